"""crm-otel: an OpenTelemetry distribution for a Django CRM."""

from crm_otel._tracing import TracingInstrumentation
from crm_otel._version import __version__

__all__ = ["TracingInstrumentation", "__version__"]

"""The one place in crm_otel that touches private names of the libraries it works with.

The SDK's configuration module, the API's logs module, the contrib instrumentations,
Django, Django REST framework and psycopg_pool all keep names crm-otel needs behind an
underscore. Every use is here and in `PRIVATE_NAMES`, so a release that moves one breaks
this module, and `tests/crm_otel/test_sdk_seam.py` says which name moved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

# The logs API is underscored in opentelemetry-api (not yet stable).
from opentelemetry._logs import (
    Logger as Logger,
)
from opentelemetry._logs import (
    LoggerProvider as LoggerProvider,
)
from opentelemetry._logs import (
    SeverityNumber as SeverityNumber,
)
from opentelemetry._logs import (
    get_logger_provider as get_logger_provider,
)
from opentelemetry.sdk import _configuration as _conf
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.sampling import Sampler

# The distro's `load_instrumentor` receives these (a private re-export of importlib's).
from opentelemetry.util._importlib_metadata import EntryPoint as EntryPoint


def exporters_from_env() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The span, metric and log exporter classes named by `OTEL_*_EXPORTER`."""
    return _conf._import_exporters(
        _conf._get_exporter_names("traces"),
        _conf._get_exporter_names("metrics"),
        _conf._get_exporter_names("logs"),
    )


def init_tracing(
    exporters: dict[str, Any],
    resource: Resource,
    sampler: Sampler | None,
    span_processors: Sequence[SpanProcessor],
    export_span_processor: Callable[[SpanExporter], SpanProcessor],
) -> None:
    """Create and install the global TracerProvider."""
    _conf._init_tracing(
        exporters=exporters,
        sampler=sampler,
        resource=resource,
        span_processors=span_processors,
        # The SDK's protocol also admits extra arguments it never passes.
        export_span_processor=export_span_processor,  # type: ignore[arg-type]
    )


def init_logging(exporters: dict[str, Any], resource: Resource) -> None:
    """Create and install the global LoggerProvider, without the SDK's deprecated handler."""
    _conf._init_logging(exporters, resource, setup_logging_handler=False)


def log_export_failure() -> Any:
    """The log exporters' FAILURE result (the logs SDK is private too)."""
    from opentelemetry.sdk._logs.export import LogRecordExportResult

    return LogRecordExportResult.FAILURE


BaseConfigurator = _conf._BaseConfigurator
"""The SDK's configurator base class (private in the SDK)."""

DJANGO_MIDDLEWARE = (
    "opentelemetry.instrumentation.django.middleware.otel_middleware._DjangoMiddleware"
)
"""The dotted path under which the Django instrumentation adds its middleware (a private
class of the contrib package): crm-otel's middleware goes right after it."""


OTLP_HTTP_LOG_EXPORTER_MODULE = "opentelemetry.exporter.otlp.proto.http._log_exporter"
"""The (private) module of the OTLP/HTTP log exporter: its logger's records are the log
export failures crm-otel counts and quiets."""


def endpoint_of(exporter: object) -> str:
    """The endpoint an OTLP exporter was built with ("" for other exporters)."""
    return str(getattr(exporter, "_endpoint", "") or "")


def metric_preferences(exporter: object) -> tuple[Any, Any]:
    """A metric exporter's preferred temporality and aggregation (None when unset)."""
    return (
        getattr(exporter, "_preferred_temporality", None),
        getattr(exporter, "_preferred_aggregation", None),
    )


def response_already_logged(response: object) -> bool:
    """Whether Django's `log_response` has already logged this response."""
    return bool(getattr(response, "_has_been_logged", False))


def django_request(drf_request: Any) -> Any:
    """The Django `HttpRequest` a Django REST framework `Request` wraps."""
    return drf_request._request


def pool_of(connection: object) -> Any:
    """The psycopg_pool pool a psycopg connection is checked out of, or None: the pool
    sets `_pool` on a connection while it is out (Django hands it back through it)."""
    return getattr(connection, "_pool", None)


@dataclass(frozen=True)
class PrivateName:
    """A private name crm-otel relies on.

    `module` and `qualname` locate it; for an attribute set on instances, `qualname` is
    the function or class whose code sets `attribute`.
    """

    distribution: str
    module: str
    qualname: str
    attribute: str = ""
    use: str = ""


PRIVATE_NAMES: tuple[PrivateName, ...] = (
    *(
        PrivateName("opentelemetry-sdk", "opentelemetry.sdk._configuration", name, use=use)
        for name, use in (
            ("_import_exporters", "the exporter classes named by OTEL_*_EXPORTER"),
            ("_get_exporter_names", "the exporter names of each signal"),
            ("_init_tracing", "the global TracerProvider"),
            ("_init_metrics", "the global MeterProvider the SDK's way"),
            ("_init_logging", "the global LoggerProvider"),
            ("_BaseConfigurator", "the configurator's base class"),
        )
    ),
    PrivateName(
        "opentelemetry-sdk",
        "opentelemetry.sdk._logs.export",
        "LogRecordExportResult",
        use="a failed log export",
    ),
    *(
        PrivateName("opentelemetry-api", "opentelemetry._logs", name, use="the OTel logs bridge")
        for name in ("Logger", "LoggerProvider", "SeverityNumber", "get_logger_provider")
    ),
    PrivateName(
        "opentelemetry-api",
        "opentelemetry.util._importlib_metadata",
        "EntryPoint",
        use="the distro's load_instrumentor",
    ),
    PrivateName(
        "opentelemetry-exporter-otlp-proto-http",
        OTLP_HTTP_LOG_EXPORTER_MODULE,
        "OTLPLogExporter",
        use="the logger whose failure records are counted",
    ),
    PrivateName(
        "opentelemetry-instrumentation-django",
        "opentelemetry.instrumentation.django.middleware.otel_middleware",
        "_DjangoMiddleware",
        use="crm-otel's middleware goes right after it",
    ),
    PrivateName(
        "opentelemetry-exporter-otlp-proto-http",
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "OTLPSpanExporter.__init__",
        "_endpoint",
        use="the endpoint named in export failure lines",
    ),
    PrivateName(
        "opentelemetry-exporter-otlp-proto-grpc",
        "opentelemetry.exporter.otlp.proto.grpc.exporter",
        "OTLPExporterMixin.__init__",
        "_endpoint",
        use="the endpoint named in export failure lines",
    ),
    *(
        PrivateName(
            "opentelemetry-sdk",
            "opentelemetry.sdk.metrics.export",
            "MetricExporter.__init__",
            attribute,
            use="a wrapped metric exporter keeps its preferences",
        )
        for attribute in ("_preferred_temporality", "_preferred_aggregation")
    ),
    PrivateName(
        "Django",
        "django.utils.log",
        "log_response",
        "_has_been_logged",
        use="the access log does not log an error response twice",
    ),
    PrivateName(
        "djangorestframework",
        "rest_framework.request",
        "Request.__init__",
        "_request",
        use="the Django request behind a DRF request",
    ),
    PrivateName(
        "psycopg-pool",
        "psycopg_pool.pool",
        "ConnectionPool",
        "_pool",
        use="the pool a checked-out connection belongs to",
    ),
)
"""Every private name crm_otel uses, with the distribution that owns it."""

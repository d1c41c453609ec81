"""The one place that touches the SDK's private configuration module.

`opentelemetry.sdk._configuration` is underscored (private): every use of it is here, so
an SDK release that moves it breaks one module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk import _configuration as _conf
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.sampling import Sampler


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

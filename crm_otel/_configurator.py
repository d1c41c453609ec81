"""The configurator: builds the SDK's providers with crm-otel's pipeline."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.resources import Resource

from crm_otel import _sdk, logs, metrics
from crm_otel._distro import is_helper_process
from crm_otel._export_health import quiet_exporter_logs
from crm_otel._lifecycle import install_sigterm_flush
from crm_otel._log import internal_logger
from crm_otel._pipeline import span_pipeline
from crm_otel._settings import Settings
from crm_otel._version import __version__


class CrmOtelConfigurator(_sdk.BaseConfigurator):
    """Registered as the `opentelemetry_configurator` entry point `crm_otel`."""

    def _configure(self, **kwargs: Any) -> None:
        if is_helper_process():
            return
        try:
            configure(
                os.environ, auto_instrumentation_version=kwargs.get("auto_instrumentation_version")
            )
        except Exception:  # telemetry must never stop the CRM from booting
            internal_logger.exception(
                "crm-otel could not configure OpenTelemetry; the app runs untraced"
            )


def build_resource(settings: Settings, auto_instrumentation_version: str | None = None) -> Resource:
    """The resource of every signal: service name (from `OTEL_*`), environment, distro."""
    attributes: dict[str, Any] = {
        "deployment.environment.name": settings.environment,
        "telemetry.distro.name": "crm-otel",
        "telemetry.distro.version": __version__,
    }
    if auto_instrumentation_version:
        attributes["telemetry.auto.version"] = auto_instrumentation_version
    return Resource.create(attributes)


def configure(environ: Mapping[str, str], auto_instrumentation_version: str | None = None) -> None:
    """Install the tracer, meter and logger providers for this process."""
    settings = Settings.from_env(environ)
    quiet_exporter_logs()
    resource = build_resource(settings, auto_instrumentation_version)
    try:
        span_exporters, metric_exporters, log_exporters = _sdk.exporters_from_env()
    except Exception as exc:  # an unknown exporter name: report it, keep the app up
        internal_logger.warning(
            "OTEL_TRACES_EXPORTER/OTEL_METRICS_EXPORTER/OTEL_LOGS_EXPORTER name an exporter "
            "that cannot be loaded (%s); expected otlp, console or none; nothing is exported",
            exc,
        )
        span_exporters, metric_exporters, log_exporters = {}, {}, {}
    metrics.setup_metrics(resource, metric_exporters, environ)
    logs.setup_logging(resource, log_exporters, environ)
    sampler, export_processor = span_pipeline(settings)
    _sdk.init_tracing(
        span_exporters,
        resource,
        sampler,
        [*metrics.span_processors(), *logs.span_processors()],
        export_processor,
    )
    install_sigterm_flush()

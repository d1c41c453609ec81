"""The configurator: builds the SDK's providers with crm-otel's pipeline.

With the distro and the CLI, this is where the packages meet: it imports the core, the
logs and the metrics, and none of them imports it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SpanExporter

from crm_otel import _sdk, _settings, logs, metrics
from crm_otel._distro import is_helper_process
from crm_otel._env import EnvReader
from crm_otel._export_health import quiet_exporter_logs
from crm_otel._lifecycle import install_sigterm_flush
from crm_otel._log import internal_logger
from crm_otel._pipeline import span_pipeline
from crm_otel._settings import Settings
from crm_otel._version import __version__
from crm_otel.logs import LogSettings
from crm_otel.metrics._settings import MetricsSettings


@dataclass(frozen=True)
class ProcessSettings:
    """Every package's settings, read from one environment in one pass."""

    core: Settings
    metrics: MetricsSettings
    logs: LogSettings

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], *, reader: EnvReader | None = None
    ) -> ProcessSettings:
        """Build each package's settings from `environ`; bad values fall back to defaults."""
        env = reader or EnvReader(environ)
        core = Settings.from_env(environ, reader=env)
        return cls(
            core=core,
            metrics=MetricsSettings.from_env(environ, reader=env),
            logs=LogSettings.from_env(environ, environment=core.environment, reader=env),
        )


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


def _redacted_and_counted(exporter: SpanExporter) -> SpanExporter:
    # Redacted copies first: the counts by org and the exporter see what leaves the process.
    return logs.redacting_span_exporter(metrics.tenant_span_exporter(exporter))


def configure(environ: Mapping[str, str], auto_instrumentation_version: str | None = None) -> None:
    """Install the tracer, meter and logger providers for this process.

    Every variable is read here, once; the distro's instrumentors use the same settings.
    """
    every = ProcessSettings.from_env(environ)
    settings = every.core
    _settings.ACTIVE.activate(settings)
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
    metrics.setup_metrics(resource, metric_exporters, every.metrics)
    logs.setup_logging(resource, log_exporters, every.logs)
    sampler, export_processor = span_pipeline(
        settings,
        wrap_exporter=_redacted_and_counted,
        decision_listener=metrics.decision_listener,
    )
    _sdk.init_tracing(
        span_exporters,
        resource,
        sampler,
        [*metrics.span_processors(), *logs.span_processors()],
        export_processor,
    )
    install_sigterm_flush(metrics.flush_state)

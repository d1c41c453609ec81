"""The distro: defaults for the CRM, and per-library options for each instrumentation.

Like the configurator, this is where the packages meet: it hands each instrumentation the
settings `configure()` read, and the logs' and metrics' hooks.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

from opentelemetry import trace

# mypy does not see BaseDistro through the package's lazy re-exports.
from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.metrics import NoOpMeterProvider

from crm_otel import _settings
from crm_otel._sdk import EntryPoint
from crm_otel._settings import Settings

DEFAULTS: dict[str, str] = {
    "OTEL_TRACES_EXPORTER": "otlp",
    # Prometheus text on /metrics is crm-otel's own; OTLP metrics and logs are opt-in.
    "OTEL_METRICS_EXPORTER": "none",
    "OTEL_LOGS_EXPORTER": "none",
    # Jaeger's OTLP/HTTP port is the default endpoint of the http/protobuf exporter.
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
}
"""`OTEL_*` defaults crm-otel sets when the variable is unset."""

SERVICE_NAME = "crm-backend"

POSTGRES_INSTRUMENTATIONS = frozenset({"psycopg2", "psycopg"})
"""Entry points of the PostgreSQL drivers' instrumentations (psycopg2, psycopg 3): both get
the same options."""

METERED_INSTRUMENTATIONS = frozenset({"django", "celery"})
"""Entry points of instrumentations that record metrics of their own (`http.server.*`,
`flower.*`): crm-otel's Prometheus families never read them, so they are recorded only when
an `OTEL_METRICS_EXPORTER` exports them."""

_HELPER_COMMANDS = ("from multiprocessing.resource_tracker import main",)
"""`python -c` commands of helper processes that run no app code."""


def apply_defaults(environ: MutableMapping[str, str]) -> None:
    """Fill in crm-otel's defaults for the standard variables the user left unset."""
    for name, value in DEFAULTS.items():
        environ.setdefault(name, value)
    if "service.name=" not in environ.get("OTEL_RESOURCE_ATTRIBUTES", ""):
        environ.setdefault("OTEL_SERVICE_NAME", SERVICE_NAME)


def is_helper_process(argv: Sequence[str] | None = None) -> bool:
    """Whether this process is multiprocessing's resource tracker: a server that spawns its
    workers (uvicorn `--workers`) starts one with its own environment, launcher included,
    and instrumenting it would cost tens of MB for a process that runs no app code."""
    argv = sys.orig_argv if argv is None else argv
    return any(arg.startswith(_HELPER_COMMANDS) for arg in argv)


class CrmOtelDistro(BaseDistro):  # type: ignore[misc]
    """Registered as the `opentelemetry_distro` entry point `crm_otel`."""

    def _configure(self, **kwargs: Any) -> None:
        apply_defaults(os.environ)

    def load_instrumentor(self, entry_point: EntryPoint, **kwargs: Any) -> None:
        if is_helper_process():
            return
        name = entry_point.name
        if name == "logging":
            # crm-otel bridges log records to the OTel logs SDK itself; the logging
            # instrumentation would attach a second handler and export every record twice.
            return
        settings = _settings.ACTIVE.current()  # the configurator's, read once
        if name in POSTGRES_INSTRUMENTATIONS:
            # Parameter values are personal data: never captured, whatever a default says.
            kwargs["capture_parameters"] = False
            kwargs["enable_commenter"] = settings.sqlcommenter
        elif name == "redis":
            _redis_options(settings, kwargs)
        if name in METERED_INSTRUMENTATIONS and not metric_exporters_configured(os.environ):
            kwargs.setdefault("meter_provider", NoOpMeterProvider())
        if name == "django":
            from crm_otel._django import instrument_django
            from crm_otel._postgres import watch_connections
            from crm_otel.metrics import first_in_server

            watch_connections(first_in_server)

            kwargs.setdefault("excluded_urls", _django_excluded_urls(os.environ))
            instrumentor = entry_point.load()()
            instrument_django(lambda: instrumentor.instrument(**kwargs))
            return
        super().load_instrumentor(entry_point, **kwargs)
        if name == "celery":
            from crm_otel import _celery
            from crm_otel.logs import _tasks
            from crm_otel.metrics import flush_state

            _celery.install(_tasks.forget, flush_state)


def metric_exporters_configured(environ: Mapping[str, str]) -> bool:
    """Whether `OTEL_METRICS_EXPORTER` names an exporter (anything but `none`)."""
    names = environ.get("OTEL_METRICS_EXPORTER", "none").split(",")
    return any(n.strip() and n.strip().lower() != "none" for n in names)


def _redis_options(settings: Settings, kwargs: dict[str, Any]) -> None:
    from crm_otel.metrics import redis_hooks

    if not settings.redis_root_spans:
        from crm_otel._redis import InTraceOnlyTracerProvider

        kwargs["tracer_provider"] = InTraceOnlyTracerProvider(trace.get_tracer_provider())
    hooks = redis_hooks()  # cache hit/miss counting for the metrics
    if hooks is not None:
        kwargs["request_hook"], kwargs["response_hook"] = hooks


def _django_excluded_urls(environ: Mapping[str, str]) -> str:
    """The user's excluded URLs plus the metrics path: a scrape a second is not a trace."""
    from crm_otel.metrics._settings import ACTIVE

    path = ACTIVE.current().path
    metrics = re.escape(path) + r"(\?|$)"
    user = environ.get("OTEL_PYTHON_DJANGO_EXCLUDED_URLS")
    user = user or environ.get("OTEL_PYTHON_EXCLUDED_URLS")
    return f"{user},{metrics}" if user else metrics

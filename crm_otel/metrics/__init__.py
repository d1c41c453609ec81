"""Metrics: the CRM's Prometheus families, recorded through the OpenTelemetry SDK.

`setup_metrics` installs the global MeterProvider (with the exporters named by
`OTEL_METRICS_EXPORTER`, and a reader feeding this process's state file); the Django
middleware `MetricsMiddleware` answers `GET /metrics` on the app's own port; Celery
workers answer on a standalone port. App code records WebSocket metrics with the
`websocket_*` helpers.
"""

from __future__ import annotations

import atexit
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import metrics as otel_metrics
from opentelemetry.sdk.environment_variables import OTEL_METRICS_EXEMPLAR_FILTER
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter

from crm_otel._export_health import ReportingMetricExporter
from crm_otel._log import internal_logger
from crm_otel._version import __version__
from crm_otel.metrics import _runtime, _tenants
from crm_otel.metrics._django import MetricsMiddleware
from crm_otel.metrics._instruments import Instruments, views
from crm_otel.metrics._settings import ACTIVE, MetricsSettings
from sampling import Reason

GROUP_VARIABLE = "_CRM_OTEL_METRICS_GROUP"
"""Set by the first process of a server (gunicorn master, Celery worker, runserver) and
inherited by the processes it forks or starts: the processes whose files one scrape merges."""

METER_NAME = "crm_otel"


def setup_metrics(
    resource: Resource,
    exporters: dict[str, Any],
    settings: MetricsSettings | Mapping[str, str],
) -> None:
    """Create and install the global MeterProvider, and the metrics of this process.

    `settings` are the metrics settings, or the environment to read them from.
    """
    if not isinstance(settings, MetricsSettings):
        settings = MetricsSettings.from_env(settings)
    ACTIVE.activate(settings)
    readers: list[MetricReader] = []
    for exporter_class in exporters.values():
        if isinstance(exporter_class, type) and issubclass(exporter_class, MetricReader):
            readers.append(exporter_class())
        else:
            readers.append(PeriodicExportingMetricReader(ReportingMetricExporter(exporter_class())))
    state_reader = InMemoryMetricReader() if settings.enabled else None
    if state_reader is not None:
        readers.append(state_reader)
    # Shut down at exit only after the state file's last write is registered (atexit runs
    # last-in first-out): the final OTLP export, and what it counts, lands in that write.
    provider = MeterProvider(
        resource=resource,
        metric_readers=readers,
        views=views(),
        # The SDK reads `OTEL_METRICS_EXEMPLAR_FILTER` from the process environment itself.
        exemplar_filter=_sdk_exemplar_filter(exporters, os.environ),
        shutdown_on_exit=False,
    )
    otel_metrics.set_meter_provider(provider)
    try:
        if state_reader is None:
            _runtime.install(None)
            return
        try:
            _runtime.install(_build_runtime(settings, provider, state_reader))
        except Exception as exc:  # metrics must never stop the app or its tracing
            internal_logger.warning(
                "crm-otel metrics could not start (%s: %s); the app and its tracing run "
                "without them",
                type(exc).__name__,
                exc,
            )
            _runtime.install(None)
    finally:
        atexit.register(provider.shutdown)


def _sdk_exemplar_filter(exporters: dict[str, Any], environ: Mapping[str, str]) -> Any:
    """The SDK's exemplar filter: off when no exporter reads the SDK's exemplars (crm-otel's
    own, on `/metrics`, come from its exemplar store), else `OTEL_METRICS_EXEMPLAR_FILTER`'s.

    With the SDK's default (`trace_based`) every measurement taken inside a sampled span
    would be offered to a reservoir that nothing reads.
    """
    if exporters or OTEL_METRICS_EXEMPLAR_FILTER in environ:
        return None
    return AlwaysOffExemplarFilter()


def _build_runtime(
    settings: MetricsSettings, provider: MeterProvider, reader: InMemoryMetricReader
) -> _runtime.Runtime:
    from crm_otel._export_health import HEALTH
    from crm_otel.metrics import _celery, _django, _process
    from crm_otel.metrics._exemplars import ExemplarStore
    from crm_otel.metrics._recorder import ProcessRecorder
    from crm_otel.metrics._redis import RedisPoller
    from crm_otel.metrics._store import remove_old_groups
    from crm_otel.metrics._tenant_ledger import capacity_for
    from semconv import metrics as semconv_metrics

    group = os.environ.get(GROUP_VARIABLE)
    if not group:
        group = f"g-{os.getpid()}-{int(time.time())}"
        os.environ[GROUP_VARIABLE] = group
        remove_old_groups(settings.directory, keep=group)
    store = _open_store(settings, group)
    _tenants.install(_tenants.TenantTable(capacity_for(settings.tenants_top_n)))
    meter = provider.get_meter(METER_NAME, __version__)
    exemplars = ExemplarStore() if settings.exemplars else None
    if exemplars is not None:
        semconv_metrics.METRICS_EXEMPLARS_DROPPED.create(meter, [exemplars.observe_dropped])
    instruments = Instruments.create(meter, settings.label_cap, exemplars)
    poller = RedisPoller(settings.redis_poll_s)
    semconv_metrics.CACHE_EVICTIONS.create(meter, [poller.observe_evictions])
    semconv_metrics.CELERY_QUEUE_LENGTH.create(meter, [poller.observe_queue_lengths])
    semconv_metrics.PROCESS_RESIDENT_MEMORY.create(meter, [_process.observe_memory])
    semconv_metrics.PROCESS_CPU_TIME.create(meter, [_process.observe_cpu])
    semconv_metrics.EXPORT_DROPPED.create(meter, [HEALTH.observe])
    semconv_metrics.EXPORT_ITEMS.create(meter, [HEALTH.observe_items])
    recorder = ProcessRecorder(store, reader, settings.write_interval_s, exemplars)
    runtime = _runtime.Runtime(settings, instruments, recorder, poller, exemplars)
    _django.connect_signals()
    _celery.connect_signals()
    return runtime


def _open_store(settings: MetricsSettings, group: str) -> Any:
    """The group's store in the configured directory; when that cannot be created or
    written, one line naming `CRM_OTEL_METRICS_DIR`, and the default directory instead."""
    from crm_otel.metrics._settings import default_directory
    from crm_otel.metrics._store import GroupStore

    def usable(root: str) -> GroupStore:
        store = GroupStore(os.path.join(root, group), settings.label_cap, settings.tenants_top_n)
        probe = os.path.join(store.directory, f".probe-{os.getpid()}")
        with open(probe, "w", encoding="ascii") as handle:  # read-only or full: fail here
            handle.write("ok")
        os.remove(probe)
        return store

    try:
        return usable(settings.directory)
    except OSError as exc:
        default = default_directory()
        if os.path.abspath(settings.directory) == os.path.abspath(default):
            raise
        internal_logger.warning(
            "CRM_OTEL_METRICS_DIR: expected a directory crm-otel can create and write, got "
            "%r (%s); using the default %r",
            settings.directory,
            exc.strerror or exc,
            default,
        )
        return usable(default)


def span_processors() -> list[SpanProcessor]:
    """Span processors that derive metrics from spans (they see every span, before sampling)."""
    from crm_otel.metrics._spans import BusinessMetricsProcessor

    return [BusinessMetricsProcessor(), _tenants.TenantSpanProcessor()]


def tenant_span_exporter(exporter: SpanExporter) -> SpanExporter:
    """`exporter` behind a counter of the kept spans (and their size) by org."""
    return _tenants.TenantSpanExporter(exporter)


def decision_listener() -> Callable[[int, bool, Reason], None] | None:
    """What a tail sampler tells its decisions to (exemplars of kept traces), or None when
    metrics or exemplars are off; from this call on, exemplar candidates are held."""
    runtime = _runtime.current()
    if runtime is None or runtime.exemplars is None:
        return None
    runtime.exemplars.listening = True
    return runtime.exemplars.decided


def flush_state() -> None:
    """Write this process's state file now (before a SIGTERM death skips atexit)."""
    runtime = _runtime.current()
    if runtime is not None:
        runtime.recorder.flush()


def first_in_server(key: str) -> bool:
    """Whether this process is the first of its server (a gunicorn master and its workers,
    a Celery worker and its children: one metrics group) to claim `key`. With metrics off
    there is no group, and each process is its own server."""
    group = os.environ.get(GROUP_VARIABLE)
    if not group:
        return True
    path = os.path.join(ACTIVE.current().directory, group, f"said-{key}")
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return False
    except OSError:  # no group directory: better said twice than never
        return True
    return True


def redis_hooks() -> tuple[Callable[..., None], Callable[..., None]] | None:
    """`(request_hook, response_hook)` for `RedisInstrumentor().instrument(...)`, or None
    when metrics are off."""
    if _runtime.current() is None:
        return None
    from crm_otel.metrics._redis import request_hook, response_hook

    return request_hook, response_hook


def websocket_connected() -> float:
    """Count a WebSocket connection as open; pass the returned value to `websocket_disconnected`."""
    runtime = _runtime.current()
    if runtime is not None:
        runtime.instruments.websocket_active.add(1)
    return time.monotonic()


def websocket_disconnected(connected_at: float) -> None:
    """Count a WebSocket connection as closed and record how long it was open."""
    runtime = _runtime.current()
    if runtime is not None:
        runtime.instruments.websocket_active.add(-1)
        runtime.instruments.websocket_duration.record(max(0.0, time.monotonic() - connected_at))


def websocket_message_sent(count: int = 1) -> None:
    """Count WebSocket messages sent to clients."""
    runtime = _runtime.current()
    if runtime is not None and count > 0:
        runtime.instruments.websocket_messages.add(count)


__all__ = [
    "MetricsMiddleware",
    "decision_listener",
    "redis_hooks",
    "setup_metrics",
    "span_processors",
    "tenant_span_exporter",
    "websocket_connected",
    "websocket_disconnected",
    "websocket_message_sent",
]

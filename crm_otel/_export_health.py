"""Exporter trouble, said once.

When an OTLP endpoint refuses, times out or answers with an error, the SDK's exporters log
a multi-line warning for every retry of every batch, into the app's own log stream. Here
instead: one line when a signal's export first fails (naming the endpoint and what
happened), then at most one summary line a minute with what was dropped, and one line when
the export recovers. Dropped spans, log records and metric points are also counted in
`crm_otel_export_dropped_total{signal}`, and every item handed to an exporter in
`crm_otel_export_items_total{signal}`: what the endpoint acknowledged is the difference.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from crm_otel import _sdk
from crm_otel._log import internal_logger
from sampling._fork import register_at_fork

SIGNALS = ("traces", "logs", "metrics")
ITEMS = {"traces": "spans", "logs": "log records", "metrics": "metric points"}
SUMMARY_INTERVAL_S = 60.0

EXPORTER_LOGGERS = {
    "opentelemetry.exporter.otlp.proto.http.trace_exporter": "traces",
    _sdk.OTLP_HTTP_LOG_EXPORTER_MODULE: "logs",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter": "metrics",
    "opentelemetry.exporter.otlp.proto.grpc.exporter": "",
}
"""The loggers the OTLP exporters report failed or retried batches on, and their signal
("" where one logger serves every signal)."""

_NOISE = ("Transient error", "Failed to export")
_RETRIED = re.compile(r"Transient error (.+?) encountered while exporting")
_MAX_REASON = 240


@dataclass
class _SignalState:
    failing_since: float | None = None
    items_total: int = 0
    dropped_total: int = 0
    dropped_unreported: int = 0
    reason: str = ""
    endpoint: str = ""


@dataclass
class ExportHealth:
    """What each signal's exporter has dropped, and whether it is failing right now."""

    clock: Callable[[], float] = time.monotonic
    summary_interval_s: float = SUMMARY_INTERVAL_S
    log: logging.Logger = internal_logger
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _states: dict[str, _SignalState] = field(init=False, repr=False)
    _last_summary: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        self._states = {signal: _SignalState() for signal in SIGNALS}

    def note_reason(self, signal: str, text: str) -> None:
        """Remember what an exporter said about its last failure ("" signal: any failing one).

        The underlying error of a retried batch ("Connection refused") is worth more than
        the exporter's closing "gave up" message, so the latter never replaces it.
        """
        text = " ".join(text.split())
        retried = _RETRIED.search(text)
        gave_up = retried is None and "due to timeout" in text
        reason = (retried.group(1) if retried else text)[:_MAX_REASON]
        with self._lock:
            targets = [signal] if signal else list(SIGNALS)
            for name in targets:
                if not (gave_up and self._states[name].reason):
                    self._states[name].reason = reason

    def handed(self, signal: str, items: int) -> None:
        """Count `items` handed to `signal`'s exporter (before it knows how that ends)."""
        with self._lock:
            self._states[signal].items_total += items

    def discarded(self, signal: str, items: int) -> None:
        """Count `items` crm-otel itself could not hand over (handed and dropped at once, so
        the totals still reconcile); the caller says why."""
        with self._lock:
            state = self._states[signal]
            state.items_total += items
            state.dropped_total += items

    def failed(self, signal: str, items: int, endpoint: str) -> None:
        """Count `items` dropped by a failed export; say so if it is news or a minute passed."""
        now = self.clock()
        lines: list[str] = []
        # Bookkeeping under the lock; logging after it (a handler may be slow).
        with self._lock:
            state = self._states[signal]
            state.dropped_total += items
            state.dropped_unreported += items
            state.endpoint = endpoint or state.endpoint
            if state.failing_since is None:
                state.failing_since = now
                lines.append(
                    f"{signal} export to {state.endpoint or 'the exporter'} failed: "
                    f"{state.reason or 'the exporter reported a failure'}; "
                    f"{items} {ITEMS[signal]} dropped. Telemetry keeps being dropped (and "
                    "counted in crm_otel_export_dropped_total) until it answers; a summary "
                    "follows at most once a minute"
                )
                state.dropped_unreported = 0
                if self._last_summary == 0.0:
                    self._last_summary = now
            elif now - self._last_summary >= self.summary_interval_s:
                self._last_summary = now
                parts = []
                for name, other in self._states.items():
                    if other.dropped_unreported:
                        parts.append(f"{other.dropped_unreported} {ITEMS[name]}")
                        other.dropped_unreported = 0
                lines.append(
                    f"export still failing ({state.reason or 'no reason given'}): dropped "
                    f"{', '.join(parts) or 'nothing'} in the last "
                    f"{self.summary_interval_s:.0f} s"
                )
        for line in lines:
            self.log.warning("%s", line)

    def succeeded(self, signal: str) -> None:
        """Note a successful export; say once that a failing export recovered."""
        with self._lock:
            state = self._states[signal]
            if state.failing_since is None:
                return
            down_s = self.clock() - state.failing_since
            state.failing_since = None
            dropped, state.dropped_unreported = state.dropped_unreported, 0
            endpoint = state.endpoint
        self.log.warning(
            "%s export to %s recovered after %.0f s (%d %s dropped since the last report)",
            signal,
            endpoint or "the exporter",
            down_s,
            dropped,
            ITEMS[signal],
        )

    def dropped(self) -> dict[str, int]:
        """Items dropped by failed exports in this process, per signal."""
        with self._lock:
            return {signal: state.dropped_total for signal, state in self._states.items()}

    def items(self) -> dict[str, int]:
        """Items handed to exporters in this process, per signal."""
        with self._lock:
            return {signal: state.items_total for signal, state in self._states.items()}

    def observe(self, options: CallbackOptions) -> Iterable[Observation]:
        """Observable callback of `crm_otel_export_dropped_total`."""
        return [Observation(count, {"signal": signal}) for signal, count in self.dropped().items()]

    def observe_items(self, options: CallbackOptions) -> Iterable[Observation]:
        """Observable callback of `crm_otel_export_items_total`."""
        return [Observation(count, {"signal": signal}) for signal, count in self.items().items()]

    def reset(self) -> None:
        """Forget everything (a forked child starts its own counts)."""
        with self._lock:
            self.__post_init__()
            self._last_summary = 0.0


HEALTH = ExportHealth()
"""This process's export health."""

register_at_fork(after_in_child=HEALTH.reset)


class _QuietExporterRecords(logging.Filter):
    """Turns the exporters' per-retry warnings into a remembered reason."""

    def __init__(self, health: ExportHealth, signal: str) -> None:
        super().__init__()
        self._health = health
        self._signal = signal

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(record.msg, str) or not record.msg.startswith(_NOISE):
            return True
        try:
            self._health.note_reason(self._signal, record.getMessage())
        except Exception:  # a malformed record must not break the exporter
            return False
        return False


def quiet_exporter_logs(health: ExportHealth = HEALTH) -> None:
    """Install the filters that silence the exporters' per-retry warnings (idempotent)."""
    for name, signal in EXPORTER_LOGGERS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _QuietExporterRecords) for f in logger.filters):
            logger.addFilter(_QuietExporterRecords(health, signal))


def endpoint_of(exporter: object) -> str:
    """The endpoint an OTLP exporter sends to, credentials masked ("" if it has none)."""
    from crm_otel._masks import mask_url

    endpoint = _sdk.endpoint_of(exporter)
    return mask_url(str(endpoint)) if endpoint else ""


class ReportingSpanExporter(SpanExporter):
    """A span exporter that reports failures to an `ExportHealth` and never raises."""

    def __init__(self, inner: SpanExporter, health: ExportHealth = HEALTH) -> None:
        self._inner = inner
        self._health = health
        self._endpoint = endpoint_of(inner)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self._health.handed("traces", len(spans))
        try:
            result = self._inner.export(spans)
        except Exception as exc:  # an exporter bug must not kill the export thread
            self._health.note_reason("traces", f"{type(exc).__name__}: {exc}")
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            self._health.succeeded("traces")
        else:
            self._health.failed("traces", len(spans), self._endpoint)
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class ReportingLogExporter:
    """A log record exporter that reports failures to an `ExportHealth`; the SDK's
    processors need only `export`, `shutdown` and `force_flush`."""

    def __init__(self, inner: Any, health: ExportHealth = HEALTH) -> None:
        self._inner = inner
        self._health = health
        self._endpoint = endpoint_of(inner)

    def export(self, batch: Sequence[Any]) -> Any:
        self._health.handed("logs", len(batch))
        try:
            result = self._inner.export(batch)
        except Exception as exc:
            self._health.note_reason("logs", f"{type(exc).__name__}: {exc}")
            self._health.failed("logs", len(batch), self._endpoint)
            return _log_failure()
        if getattr(result, "name", "") == "SUCCESS":
            self._health.succeeded("logs")
        else:
            self._health.failed("logs", len(batch), self._endpoint)
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self._inner.force_flush(timeout_millis))


def _log_failure() -> Any:
    from crm_otel._sdk import log_export_failure

    return log_export_failure()


def reporting_log_exporter(exporter_class: Callable[[], Any]) -> Callable[[], Any]:
    """A factory the SDK calls (with no argument) instead of `exporter_class`."""

    def build() -> ReportingLogExporter:
        return ReportingLogExporter(exporter_class())

    return build


class ReportingMetricExporter(MetricExporter):
    """A metric exporter that reports failures to an `ExportHealth`, keeping the wrapped
    exporter's temporality and aggregation preferences."""

    def __init__(self, inner: MetricExporter, health: ExportHealth = HEALTH) -> None:
        temporality, aggregation = _sdk.metric_preferences(inner)
        super().__init__(preferred_temporality=temporality, preferred_aggregation=aggregation)
        self._inner = inner
        self._health = health
        self._endpoint = endpoint_of(inner)

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        points = _points(metrics_data)
        self._health.handed("metrics", points)
        try:
            result = self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception as exc:
            self._health.note_reason("metrics", f"{type(exc).__name__}: {exc}")
            result = MetricExportResult.FAILURE
        if result is MetricExportResult.SUCCESS:
            self._health.succeeded("metrics")
        else:
            self._health.failed("metrics", points, self._endpoint)
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)


def _points(data: MetricsData) -> int:
    return sum(
        len(metric.data.data_points)
        for resource_metrics in data.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
    )

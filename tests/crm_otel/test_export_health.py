"""Exporter trouble is said once, summarised at most once a minute, and counted."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from crm_otel._export_health import (
    ExportHealth,
    ReportingSpanExporter,
    _QuietExporterRecords,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def lines() -> Lines:
    return Lines()


@pytest.fixture
def health(clock: Clock, lines: Lines) -> ExportHealth:
    log = logging.getLogger("test.export_health")
    log.propagate = False
    log.handlers[:] = [lines]
    log.setLevel(logging.INFO)
    return ExportHealth(clock=clock, log=log)


class Flaky(SpanExporter):
    def __init__(self) -> None:
        self.result = SpanExportResult.FAILURE
        self.raises = False
        self._endpoint = "http://user:pw@collector:4318/v1/traces"

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.raises:
            raise ConnectionError("refused")
        return self.result


def test_first_failure_is_one_line_naming_endpoint_and_reason(
    health: ExportHealth, lines: Lines
) -> None:
    """The first failed export says once where it went, what happened and what was lost."""
    health.note_reason(
        "traces", "Transient error Connection\n  refused encountered while exporting span batch"
    )
    health.note_reason("traces", "Failed to export span batch due to timeout, max retries")
    health.failed("traces", 5, "http://collector:4318/v1/traces")
    health.failed("traces", 7, "http://collector:4318/v1/traces")
    assert len(lines.lines) == 1
    line = lines.lines[0]
    assert "\n" not in line
    assert "http://collector:4318/v1/traces" in line
    assert "failed: Connection refused;" in line
    assert "5 spans dropped" in line


def test_summary_at_most_once_a_minute(health: ExportHealth, lines: Lines, clock: Clock) -> None:
    """While failing, one summary a minute counts every signal's drops since the last."""
    health.failed("traces", 1, "e")
    for _ in range(10):
        clock.now += 5
        health.failed("traces", 2, "e")
        health.failed("logs", 3, "e")
    assert len(lines.lines) == 2  # first failure of traces, of logs
    clock.now += 15  # 65 s after the first line
    health.failed("traces", 2, "e")
    assert len(lines.lines) == 3
    assert "22 spans" in lines.lines[-1] and "27 log records" in lines.lines[-1]
    clock.now += 1
    health.failed("traces", 2, "e")
    assert len(lines.lines) == 3


def test_recovery_said_once_and_totals_kept(
    health: ExportHealth, lines: Lines, clock: Clock
) -> None:
    """A success after failures says so once; the dropped totals never go back."""
    health.failed("metrics", 4, "e")
    clock.now += 12
    health.succeeded("metrics")
    health.succeeded("metrics")
    assert len(lines.lines) == 2
    assert "recovered after 12 s" in lines.lines[-1]
    assert health.dropped() == {"traces": 0, "logs": 0, "metrics": 4}
    health.failed("metrics", 1, "e")
    assert len(lines.lines) == 3  # a new outage is news again
    assert health.dropped()["metrics"] == 5


def test_healthy_export_says_nothing(health: ExportHealth, lines: Lines) -> None:
    """Successful exports log nothing and count nothing; a failure after them, on the same
    handler, is said and counted."""
    for _ in range(3):
        health.succeeded("traces")
    assert lines.lines == []
    assert health.dropped() == {"traces": 0, "logs": 0, "metrics": 0}
    health.failed("traces", 2, "refused")
    assert len(lines.lines) == 1 and health.dropped()["traces"] == 2


def test_reporting_exporter_counts_failures_and_never_raises(
    health: ExportHealth, lines: Lines
) -> None:
    """The wrapper turns an exporter's exception into a counted FAILURE, and masks the
    endpoint's credentials."""
    inner = Flaky()
    exporter = ReportingSpanExporter(inner, health)
    spans: list[ReadableSpan] = [ReadableSpan(name="a"), ReadableSpan(name="b")]
    inner.raises = True
    assert exporter.export(spans) is SpanExportResult.FAILURE
    inner.raises = False
    assert exporter.export(spans) is SpanExportResult.FAILURE
    inner.result = SpanExportResult.SUCCESS
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert health.dropped()["traces"] == 4
    assert "ConnectionError: refused" in lines.lines[0]
    assert "pw" not in lines.lines[0] and "collector:4318" in lines.lines[0]
    assert "recovered" in lines.lines[-1]


def test_exporter_retry_warnings_are_silenced_but_remembered(health: ExportHealth) -> None:
    """The exporters' per-retry warnings do not reach handlers; their text becomes the reason;
    other records of those loggers pass."""
    quiet = _QuietExporterRecords(health, "traces")
    noisy = logging.LogRecord(
        "x",
        logging.WARNING,
        __file__,
        1,
        "Transient error %s encountered while exporting span batch",
        ("refused",),
        None,
    )
    other = logging.LogRecord("x", logging.WARNING, __file__, 1, "Exporter shutdown", (), None)
    assert quiet.filter(noisy) is False
    assert quiet.filter(other) is True
    lines = Lines()
    health.log.handlers[:] = [lines]
    health.failed("traces", 1, "e")
    assert "failed: refused;" in lines.lines[0]


class Logs:
    """A log exporter that succeeds, fails or raises, as told."""

    def __init__(self) -> None:
        self.outcome = "SUCCESS"

    def export(self, batch: Sequence[object]) -> object:
        if self.outcome == "raise":
            raise TimeoutError("silent endpoint")
        from opentelemetry.sdk._logs.export import LogRecordExportResult

        return LogRecordExportResult[self.outcome]


def test_items_handed_equal_acknowledged_plus_dropped(health: ExportHealth) -> None:
    """Every span, log record and metric point handed to an exporter is counted whatever the
    outcome, so items minus dropped is what the endpoint acknowledged."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        InMemoryMetricReader,
        MetricExporter,
        MetricExportResult,
    )

    from crm_otel._export_health import ReportingLogExporter, ReportingMetricExporter

    inner = Flaky()
    spans = ReportingSpanExporter(inner, health)
    batch: list[ReadableSpan] = [ReadableSpan(name=str(i)) for i in range(3)]
    spans.export(batch)  # fails
    inner.result = SpanExportResult.SUCCESS
    spans.export(batch)
    inner.raises = True
    spans.export(batch[:1])

    log_inner = Logs()
    logs = ReportingLogExporter(log_inner, health)
    logs.export([object(), object()])
    log_inner.outcome = "raise"
    logs.export([object()])

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    counter = provider.get_meter("t").create_counter("c")
    counter.add(1, {"k": "a"})
    counter.add(1, {"k": "b"})
    data = reader.get_metrics_data()
    assert data is not None

    class Metrics(MetricExporter):
        result = MetricExportResult.FAILURE

        def export(
            self, metrics_data: object, timeout_millis: float = 10_000, **kwargs: object
        ) -> MetricExportResult:
            return self.result

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
            pass

    metrics = ReportingMetricExporter(Metrics(), health)
    metrics.export(data)
    Metrics.result = MetricExportResult.SUCCESS
    metrics.export(data)
    provider.shutdown()

    assert health.items() == {"traces": 7, "logs": 3, "metrics": 4}
    assert health.dropped() == {"traces": 4, "logs": 1, "metrics": 2}
    observed = {o.attributes["signal"]: o.value for o in health.observe_items(None)}  # type: ignore[arg-type, index]
    assert observed == {"traces": 7, "logs": 3, "metrics": 4}
    health.reset()
    assert health.items() == {"traces": 0, "logs": 0, "metrics": 0}

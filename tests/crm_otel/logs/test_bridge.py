"""The OTel logs bridge: trace context, redaction, and no feedback loop."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.trace import TracerProvider

from crm_otel._context import correlation_id_var
from crm_otel._log import internal_logger
from crm_otel.logs import REDACTED, OtelLogHandler
from crm_otel.logs._bridge import severity


class LoggingExporter(InMemoryLogRecordExporter):
    """An exporter that itself logs while exporting, as urllib3 or the SDK may."""

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        logging.getLogger("urllib3.connectionpool").warning("exporting %d", len(batch))
        logging.getLogger("opentelemetry.exporter").warning("exporter trouble")
        return super().export(batch)


@pytest.fixture
def exporter() -> Iterator[InMemoryLogRecordExporter]:
    """A bridge handler on the root logger exporting synchronously to memory."""
    exporter = LoggingExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    handler = OtelLogHandler(provider)
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    yield exporter
    root.removeHandler(handler)
    root.setLevel(level)
    provider.shutdown()


def test_record_carries_trace_context_and_fields(exporter: InMemoryLogRecordExporter) -> None:
    """A record logged in a span is exported with that span's ids, severity and attributes."""
    tracer = TracerProvider().get_tracer("test")
    token = correlation_id_var.set("corr-1")
    try:
        with tracer.start_as_current_span("request") as span:
            logging.getLogger("crm.leads").warning(
                "lead %s", 5, extra={"lead_id": 5, "password": "hunter2", "tags": ["a", "b"]}
            )
    finally:
        correlation_id_var.reset(token)
    [exported] = exporter.get_finished_logs()
    record = exported.log_record
    assert record.trace_id == span.get_span_context().trace_id
    assert record.span_id == span.get_span_context().span_id
    assert record.body == "lead 5"
    assert record.severity_number == SeverityNumber.WARN and record.severity_text == "WARNING"
    assert exported.instrumentation_scope is not None
    assert exported.instrumentation_scope.name == "crm.leads"
    attributes = dict(record.attributes or {})
    assert attributes["crm.correlation_id"] == "corr-1"
    assert attributes["lead_id"] == 5 and attributes["password"] == REDACTED
    assert list(attributes["tags"]) == ["a", "b"]
    assert "hunter2" not in repr(attributes)


def test_exception_attributes(exporter: InMemoryLogRecordExporter) -> None:
    """An exception gives the semantic-convention exception attributes, redacted, and the
    error code."""

    class Failure(Exception):
        code = "WF_1"

    try:
        raise Failure("broken: token=t0k")
    except Failure:
        logging.getLogger("crm").exception("failed")
    attributes = dict(exporter.get_finished_logs()[0].log_record.attributes or {})
    assert attributes["exception.type"] == "Failure"
    assert attributes["exception.message"] == f"broken: token={REDACTED}"
    assert "Traceback" in attributes["exception.stacktrace"]
    assert "t0k" not in attributes["exception.stacktrace"]
    assert attributes["error.code"] == "WF_1"


def test_no_feedback_loop(exporter: InMemoryLogRecordExporter) -> None:
    """Records logged by the exporter, by OTel's and by crm-otel's own loggers are not bridged."""
    logging.getLogger("crm").info("one")
    internal_logger.warning("internal")
    logging.getLogger("opentelemetry.sdk").warning("sdk says")
    assert [r.log_record.body for r in exporter.get_finished_logs()] == ["one"]


def test_logger_cache_is_bounded(exporter: InMemoryLogRecordExporter) -> None:
    """Past 1024 logger names the records of later loggers share one scope."""
    for index in range(1030):
        logging.getLogger(f"dyn.{index}").info("x")
    scopes = [
        r.instrumentation_scope.name
        for r in exporter.get_finished_logs()
        if r.instrumentation_scope
    ]
    assert len(scopes) == 1030 and len(set(scopes)) == 1025
    assert scopes.count("crm_otel.bridge.other") == 6


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (logging.DEBUG, SeverityNumber.DEBUG),
        (logging.INFO, SeverityNumber.INFO),
        (logging.WARNING, SeverityNumber.WARN),
        (logging.ERROR, SeverityNumber.ERROR),
        (logging.CRITICAL, SeverityNumber.FATAL),
        (logging.INFO + 1, SeverityNumber.INFO2),
        (5, SeverityNumber.TRACE),
        (99, SeverityNumber.FATAL4),
    ],
)
def test_severity(level: int, expected: SeverityNumber) -> None:
    """Python levels map onto the OTel severity ranges."""
    assert severity(level) == expected

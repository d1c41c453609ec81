"""Spans redacted on their way to the exporter (never changed once ended), and workflow
execution events."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, Status, StatusCode

from crm_otel import TracingInstrumentation
from crm_otel._context import correlation_id_var
from crm_otel._export_health import ExportHealth
from crm_otel.logs import (
    REDACTED,
    WORKFLOW_LOGGER,
    RedactingSpanExporter,
    Redactor,
    redacting_span_exporter,
    span_processors,
)
from semconv import attributes, spans


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    for processor in span_processors():
        provider.add_span_processor(processor)
    provider.add_span_processor(SimpleSpanProcessor(redacting_span_exporter(exporter)))
    return provider, exporter


def test_sensitive_span_attributes_are_redacted_before_export() -> None:
    """Span, event and link attributes under sensitive keys, and sensitive query parameters
    in URL attributes, reach the exporter redacted, in their original order, the others
    untouched."""
    provider, exporter = _provider()
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span(
        "GET /login",
        attributes={
            "http.request.header.authorization": ("Bearer s3cr3t",),
            "http.method": "GET",
            "user.password": "hunter2",
            "http.request.header.cookie": ("sessionid=abc",),
        },
    ) as span:
        span.add_event("login", {"api_key": "k-1", "user": "ada"})
        span.set_attribute("db.statement", "SELECT 1 WHERE a = 1")
        span.set_attribute("http.target", "/api/v1/search/?q=ada&access_token=t0k&page=2")
    [exported] = exporter.get_finished_spans()
    assert dict(exported.attributes or {}) == {
        "http.request.header.authorization": REDACTED,
        "http.method": "GET",
        "user.password": REDACTED,
        "http.request.header.cookie": REDACTED,
        "db.statement": "SELECT 1 WHERE a = 1",
        "http.target": f"/api/v1/search/?q=ada&access_token={REDACTED}&page=2",
    }
    assert dict(exported.events[0].attributes or {}) == {"api_key": REDACTED, "user": "ada"}
    assert "s3cr3t" not in exported.to_json() and "hunter2" not in exported.to_json()


def test_spans_without_secrets_are_left_as_they_are() -> None:
    """A span with no sensitive value is exported as it is, not copied."""
    exporter = InMemorySpanExporter()
    redacting = RedactingSpanExporter(exporter, Redactor())
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(redacting))
    with provider.get_tracer("test").start_as_current_span("plain", attributes={"a": 1}):
        pass
    [exported] = exporter.get_finished_spans()
    assert dict(exported.attributes or {}) == {"a": 1}
    assert redacting.copied == 0


class _Broken(Redactor):
    def is_sensitive(self, key: str) -> bool:
        raise RuntimeError("broken")


def test_a_span_that_cannot_be_redacted_is_dropped_and_counted() -> None:
    """Never exported unredacted; counted with the export drops, handed and dropped at once
    (so handed = delivered + dropped still holds), while other spans still go out."""
    health = ExportHealth()
    exporter = InMemorySpanExporter()
    redacting = RedactingSpanExporter(exporter, _Broken(), health)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(redacting))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("login", attributes={"user.password": "hunter2"}):
        pass
    with tracer.start_as_current_span("bare"):
        pass
    assert [s.name for s in exporter.get_finished_spans()] == ["bare"]
    assert redacting.dropped == 1
    assert health.dropped()["traces"] == 1 and health.items()["traces"] == 1


class _Keep(SpanProcessor):
    """Keeps the very span objects the SDK hands to processors at span end."""

    def __init__(self) -> None:
        self.ended: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span)


def test_an_ended_span_is_never_changed_only_its_export_copy_is_redacted() -> None:
    """After export, the span the processors saw still holds its recorded values (span,
    event and link attributes, limits' drop counts); the exported copy is redacted."""
    exporter = InMemorySpanExporter()
    keep = _Keep()
    provider = TracerProvider(span_limits=SpanLimits(max_span_attributes=3))
    for processor in span_processors():
        provider.add_span_processor(processor)
    provider.add_span_processor(keep)
    provider.add_span_processor(SimpleSpanProcessor(redacting_span_exporter(exporter)))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("linked") as other:
        pass
    link = Link(other.get_span_context(), {"session_id": "s-1"})
    with tracer.start_as_current_span(
        "GET /login",
        links=[link],
        attributes={"n": 1, "user.password": "hunter2", "http.target": "/x?token=t0k"},
    ) as span:
        span.add_event("login", {"api_key": "k-1", "user": "ada"})
        span.set_attribute("m", 2)  # the 4th: the limit drops the oldest ("n")
    ended = keep.ended[-1]
    assert dict(ended.attributes or {}) == {
        "user.password": "hunter2",
        "http.target": "/x?token=t0k",
        "m": 2,
    }
    assert dict(span.attributes or {}) == dict(ended.attributes or {})  # type: ignore[attr-defined]
    assert dict(ended.events[0].attributes or {}) == {"api_key": "k-1", "user": "ada"}
    assert dict(ended.links[0].attributes or {}) == {"session_id": "s-1"}
    exported = exporter.get_finished_spans()[-1]
    assert exported is not ended
    assert dict(exported.attributes or {}) == {
        "user.password": REDACTED,
        "http.target": f"/x?token={REDACTED}",
        "m": 2,
    }
    assert dict(exported.events[0].attributes or {}) == {"api_key": REDACTED, "user": "ada"}
    assert dict(exported.links[0].attributes or {}) == {"session_id": REDACTED}
    assert exported.dropped_attributes == ended.dropped_attributes == 1
    assert (exported.context, exported.parent, exported.status, exported.end_time) == (
        ended.context,
        ended.parent,
        ended.status,
        ended.end_time,
    )


def _workflow(fail: bool) -> None:
    actions = ["update_field", "send_email", "assign_owner"]
    with TracingInstrumentation.create_span(
        spans.WORKFLOW_EXECUTE,
        {
            attributes.WORKFLOW_ID: "wf-1",
            attributes.WORKFLOW_NAME: "Qualify High-Value Leads",
            attributes.WORKFLOW_ACTION_COUNT: len(actions),
        },
    ) as span:
        for index, action in enumerate(actions):
            span.add_event(spans.EVENT_ACTION_START, {attributes.ACTION_TYPE: action})
            status = "failure" if fail and index == 1 else "success"
            span.add_event(
                spans.EVENT_ACTION_COMPLETE,
                {attributes.ACTION_TYPE: action, attributes.ACTION_STATUS: status},
            )
            if status == "failure":
                raise RuntimeError(f"action {action} failed")


def test_workflow_execution_line(
    span_exporter: InMemorySpanExporter,
    records: list[logging.LogRecord],
    lines: list[dict[str, Any]],
) -> None:
    """A `workflow.execute` span that ends logs the workflow line's fields (docs/design.md, Logs),
    with the workflow span's ids and the correlation id of the code that ran it."""
    provider = trace.get_tracer_provider()
    for processor in span_processors():
        provider.add_span_processor(processor)  # type: ignore[attr-defined]
    token = correlation_id_var.set("abc-125")
    try:
        _workflow(fail=False)
    finally:
        correlation_id_var.reset(token)
    [record] = [r for r in records if r.name == WORKFLOW_LOGGER]
    [span] = span_exporter.get_finished_spans()
    assert record.levelno == logging.INFO
    assert record.event_type == "workflow.executed"  # type: ignore[attr-defined]
    assert record.workflow_id == "wf-1"  # type: ignore[attr-defined]
    assert record.workflow_name == "Qualify High-Value Leads"  # type: ignore[attr-defined]
    assert record.success is True  # type: ignore[attr-defined]
    assert record.actions_executed == 3  # type: ignore[attr-defined]
    expected_ms = (span.end_time - span.start_time) / 1e6  # type: ignore[operator]
    assert record.duration_ms == pytest.approx(expected_ms, abs=0.1)  # type: ignore[attr-defined]
    [line] = [x for x in lines if x["logger"] == WORKFLOW_LOGGER]
    assert line["correlation_id"] == "abc-125"
    assert line["trace_id"] == format(span.context.trace_id, "032x")
    assert line["span_id"] == format(span.context.span_id, "016x")


def test_failed_workflow_line(
    span_exporter: InMemorySpanExporter, records: list[logging.LogRecord]
) -> None:
    """A workflow whose action fails logs at ERROR with success false and the exception."""
    provider = trace.get_tracer_provider()
    for processor in span_processors():
        provider.add_span_processor(processor)  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError):
        _workflow(fail=True)
    [record] = [r for r in records if r.name == WORKFLOW_LOGGER]
    assert record.levelno == logging.ERROR
    assert record.success is False  # type: ignore[attr-defined]
    assert record.actions_executed == 2 and record.actions_failed == 1  # type: ignore[attr-defined]
    assert record.exception_type == "RuntimeError"  # type: ignore[attr-defined]
    assert span_exporter.get_finished_spans()[0].status.status_code is StatusCode.ERROR


def test_other_spans_log_nothing(records: list[logging.LogRecord]) -> None:
    """Only `workflow.execute` spans produce a workflow line: through the same processors,
    a `search.query` span logs none and a workflow span one."""
    provider, _ = _provider()
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("search.query") as span:
        span.set_status(Status(StatusCode.OK))
    assert [r for r in records if r.name == WORKFLOW_LOGGER] == []
    with tracer.start_as_current_span(
        spans.WORKFLOW_EXECUTE, attributes={attributes.WORKFLOW_ID: "w1"}
    ):
        pass
    [record] = [r for r in records if r.name == WORKFLOW_LOGGER]
    assert record.workflow_id == "w1"  # type: ignore[attr-defined]


def test_secrets_in_exception_messages_are_redacted(
    span_exporter: InMemorySpanExporter, records: list[logging.LogRecord]
) -> None:
    """A secret in the message of an exception leaving a workflow reaches neither the
    workflow line nor the exported span's exception event."""
    provider = trace.get_tracer_provider()
    for processor in span_processors():
        provider.add_span_processor(processor)  # type: ignore[attr-defined]
    exporter = InMemorySpanExporter()
    provider.add_span_processor(  # type: ignore[attr-defined]
        SimpleSpanProcessor(redacting_span_exporter(exporter))
    )
    with (
        pytest.raises(ConnectionError),
        TracingInstrumentation.create_span(spans.WORKFLOW_EXECUTE, {"workflow.id": "w9"}),
    ):
        raise ConnectionError("SMTP login failed password=hunter2 token=abc")
    [record] = [r for r in records if r.name == WORKFLOW_LOGGER]
    message = record.exception_message  # type: ignore[attr-defined]
    assert "hunter2" not in message and "abc" not in message and REDACTED in message
    [exported] = exporter.get_finished_spans()
    event = dict(exported.events[0].attributes or {})
    assert "hunter2" not in str(event["exception.message"])
    assert "hunter2" not in str(event["exception.stacktrace"])

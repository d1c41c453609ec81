"""`TracingInstrumentation.create_span`, the in-trace-only Redis tracer, correlation ids."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import crm_otel
from crm_otel import TracingInstrumentation
from crm_otel._context import safe_correlation_id
from crm_otel._redis import InTraceOnlyTracerProvider


def test_create_span_yields_the_current_span(span_exporter: InMemorySpanExporter) -> None:
    """The span is current inside the block, carries the attributes and its events."""
    with TracingInstrumentation.create_span("workflow.execute", {"workflow.id": "w1"}) as span:
        assert trace.get_current_span() is span
        span.add_event("action.start", {"action.type": "send_email"})
    (finished,) = span_exporter.get_finished_spans()
    assert finished.name == "workflow.execute"
    assert finished.attributes == {"workflow.id": "w1"}
    assert [e.name for e in finished.events] == ["action.start"]
    assert finished.status.status_code is StatusCode.UNSET


def test_create_span_marks_errors_and_reraises(span_exporter: InMemorySpanExporter) -> None:
    """An exception leaving the block sets ERROR, is recorded, and propagates."""
    with pytest.raises(KeyError), TracingInstrumentation.create_span("search.query"):
        raise KeyError("missing")
    (finished,) = span_exporter.get_finished_spans()
    assert finished.status.status_code is StatusCode.ERROR
    assert [e.name for e in finished.events] == ["exception"]
    assert finished.events[0].attributes["exception.type"] == "KeyError"


def test_in_trace_only_tracer_skips_root_spans(span_exporter: InMemorySpanExporter) -> None:
    """Redis commands outside a trace make no span; inside one they are children."""
    tracer = InTraceOnlyTracerProvider(trace.get_tracer_provider()).get_tracer("redis-test")
    with tracer.start_as_current_span("BRPOP") as orphan:
        assert not orphan.is_recording()
    with (
        trace.get_tracer("app").start_as_current_span("GET /leads") as parent,
        tracer.start_as_current_span("GET") as child,
    ):
        assert child.is_recording()
    names = {s.name: s for s in span_exporter.get_finished_spans()}
    assert set(names) == {"GET /leads", "GET"}
    assert names["GET"].parent is not None
    assert names["GET"].parent.span_id == parent.get_span_context().span_id


def test_in_trace_only_tracer_marks_a_failed_command(span_exporter: InMemorySpanExporter) -> None:
    """A command raising inside a trace leaves an ERROR span with the exception recorded."""
    tracer = InTraceOnlyTracerProvider(trace.get_tracer_provider()).get_tracer("redis-test")
    with (
        pytest.raises(ConnectionError),
        trace.get_tracer("app").start_as_current_span("GET /leads"),
        tracer.start_as_current_span("GET"),
    ):
        raise ConnectionError("redis down")
    (command,) = [s for s in span_exporter.get_finished_spans() if s.name == "GET"]
    assert command.status.status_code is StatusCode.ERROR
    assert [e.name for e in command.events] == ["exception"]


@pytest.mark.parametrize("header", ["abc-123", "req.7:x_Y", "a" * 128])
def test_safe_correlation_ids_are_kept(header: str) -> None:
    """A plain, bounded header value is used as the correlation id."""
    assert safe_correlation_id(header) == header


@pytest.mark.parametrize("header", [None, "", "a" * 129, "bad\nid", 'quote"d', "spa ce", "é"])
def test_unsafe_correlation_ids_are_replaced(header: str | None) -> None:
    """Anything else becomes a new UUID4."""
    value = safe_correlation_id(header)
    assert value != header and len(value) == 36 and value[14] == "4"


def test_public_api_is_sorted_and_complete() -> None:
    """`crm_otel.__all__` is sorted and lists exactly the public names."""
    public = {n for n in vars(crm_otel) if not n.startswith("_")} - {"logs", "metrics"}
    assert crm_otel.__all__ == sorted(crm_otel.__all__)
    assert set(crm_otel.__all__) == public | {"__version__"}

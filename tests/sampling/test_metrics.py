"""The sampler's self-metrics, read through the OpenTelemetry metrics SDK."""

from __future__ import annotations

from opentelemetry.trace import Status, StatusCode, set_span_in_context

from semconv.metrics import (
    SAMPLING_FORCED_DECISIONS,
    SAMPLING_LATE_SPANS,
    SAMPLING_SPANS_BUFFERED,
    SAMPLING_SPANS_DROPPED,
    SAMPLING_TRACES,
)
from tests.sampling.conftest import PipelineFactory


def test_self_metrics_count_decisions_buffer_caps_and_late_spans(
    make_pipeline: PipelineFactory,
) -> None:
    """Decisions by reason, buffered spans, forced decisions, late and dropped spans are counted."""
    # The worker waits a minute between exports, so the queue fills deterministically.
    pipeline = make_pipeline(
        max_spans_per_trace=3, export_queue_size=2, schedule_delay_millis=60_000.0
    )
    tracer = pipeline.tracer

    ok = tracer.start_span("GET ok")
    tracer.start_span("SELECT", context=set_span_in_context(ok)).end()
    ok.end()  # dropped, ok

    failing = tracer.start_span("GET failing")
    failing.set_status(Status(StatusCode.ERROR))
    failing.end()  # kept, error: 1 span queued
    tracer.start_span("late", context=set_span_in_context(failing)).end()  # late, kept: queued

    big = tracer.start_span("batch")
    for _ in range(3):
        tracer.start_span("INSERT", context=set_span_in_context(big)).end()  # forced at 3

    held = tracer.start_span("GET held")
    tracer.start_span("SELECT", context=set_span_in_context(held)).end()  # 1 span held

    # The export queue (2) was filled by the error trace and its late span; nothing
    # else was kept, so nothing was dropped yet. One more kept span overflows it.
    more = tracer.start_span("GET failing 2")
    more.set_status(Status(StatusCode.ERROR))
    more.end()

    assert pipeline.metric(SAMPLING_TRACES.name) == {
        (("decision", "dropped"), ("reason", "ok")): 1,
        (("decision", "kept"), ("reason", "error")): 2,
        (("decision", "dropped"), ("reason", "forced")): 1,
    }
    assert pipeline.metric(SAMPLING_SPANS_BUFFERED.name) == {(): 1}
    assert pipeline.metric(SAMPLING_FORCED_DECISIONS.name) == {(("cap", "trace_spans"),): 1}
    assert pipeline.metric(SAMPLING_LATE_SPANS.name) == {(("decision", "kept"),): 1}
    assert pipeline.metric(SAMPLING_SPANS_DROPPED.name) == {(("reason", "queue_full"),): 1}
    big.end()
    held.end()


def test_metrics_carry_the_catalogue_units(make_pipeline: PipelineFactory) -> None:
    """Each self-metric is exported with the unit its semconv definition gives."""
    pipeline = make_pipeline()
    pipeline.tracer.start_span("GET").end()
    data = pipeline.reader.get_metrics_data()
    assert data is not None
    units = {
        metric.name: metric.unit
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    }
    assert units[SAMPLING_TRACES.name] == SAMPLING_TRACES.unit
    assert units[SAMPLING_SPANS_BUFFERED.name] == SAMPLING_SPANS_BUFFERED.unit

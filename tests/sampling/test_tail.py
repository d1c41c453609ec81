"""The tail stage's decisions: which traces are kept whole and which are dropped."""

from __future__ import annotations

import logging
import time

from opentelemetry.context import Context
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)

from sampling import Reason
from tests.sampling.conftest import (
    BASELINE_RANDOMNESS,
    OUTSIDE_BASELINE_RANDOMNESS,
    Pipeline,
    PipelineFactory,
    trace_id_with,
    wait_until,
)

TRACES = "crm_otel.sampling.traces"
FORCED = "crm_otel.sampling.forced_decisions"
LATE = "crm_otel.sampling.late_spans"
DROPPED = "crm_otel.sampling.spans_dropped"


def request(
    pipeline: Pipeline,
    randomness: int = OUTSIDE_BASELINE_RANDOMNESS,
    serial: int = 0,
    children: int = 3,
    failing_child: int | None = None,
    duration_ms: float = 1.0,
) -> int:
    """One local trace: a server root with `children` DB spans; returns its trace id."""
    trace_id = trace_id_with(randomness, serial)
    pipeline.ids.next_trace_ids.append(trace_id)
    start = 1_700_000_000_000_000_000 + serial * 10_000_000_000
    root = pipeline.tracer.start_span("GET api/v1/leads/", kind=SpanKind.SERVER, start_time=start)
    context = set_span_in_context(root)
    for index in range(children):
        child = pipeline.tracer.start_span(
            "SELECT", context=context, kind=SpanKind.CLIENT, start_time=start + 1000
        )
        if index == failing_child:
            child.set_status(Status(StatusCode.ERROR, "connection reset"))
        child.end(end_time=start + 2000)
    root.end(end_time=start + int(duration_ms * 1_000_000))
    return trace_id


def spans_of(pipeline: Pipeline, trace_id: int) -> list[str]:
    """Names of the exported spans of one trace."""
    return sorted(
        s.name for s in pipeline.exported() if s.context and s.context.trace_id == trace_id
    )


def test_error_in_a_child_keeps_the_whole_local_trace(make_pipeline: PipelineFactory) -> None:
    """A child with ERROR status keeps every span of its trace, the ok ones included."""
    pipeline = make_pipeline()
    trace_id = request(pipeline, children=3, failing_child=1)
    pipeline.flush()
    assert spans_of(pipeline, trace_id) == ["GET api/v1/leads/", "SELECT", "SELECT", "SELECT"]
    assert pipeline.metric(TRACES) == {(("decision", "kept"), ("reason", "error")): 1}


def test_recorded_exception_keeps_the_trace(make_pipeline: PipelineFactory) -> None:
    """An `exception` event keeps the trace even when the span's status was left unset."""
    pipeline = make_pipeline()
    trace_id = trace_id_with(OUTSIDE_BASELINE_RANDOMNESS, 0)
    pipeline.ids.next_trace_ids.append(trace_id)
    with pipeline.tracer.start_as_current_span("GET", record_exception=False) as root:
        with pipeline.tracer.start_as_current_span("work") as child:
            child.record_exception(ValueError("handled, but worth seeing"))
        assert root.is_recording()
    pipeline.flush()
    assert spans_of(pipeline, trace_id) == ["GET", "work"]


def test_http_5xx_keeps_the_trace(make_pipeline: PipelineFactory) -> None:
    """A span with an HTTP 5xx status code keeps its trace even without ERROR status."""
    pipeline = make_pipeline()
    trace_id = trace_id_with(OUTSIDE_BASELINE_RANDOMNESS, 0)
    pipeline.ids.next_trace_ids.append(trace_id)
    with pipeline.tracer.start_as_current_span("GET", kind=SpanKind.SERVER) as root:
        root.set_attribute("http.response.status_code", 503)
    pipeline.flush()
    assert spans_of(pipeline, trace_id) == ["GET"]


def test_slow_root_keeps_the_trace(make_pipeline: PipelineFactory) -> None:
    """A local root lasting at least the slow threshold keeps its whole trace."""
    pipeline = make_pipeline(slow_threshold_ms=50.0)
    slow = request(pipeline, serial=1, duration_ms=50.0)
    fast = request(pipeline, serial=2, duration_ms=49.0)
    pipeline.flush()
    assert pipeline.exported_trace_ids() == {slow}
    assert len(spans_of(pipeline, slow)) == 4
    assert fast not in pipeline.exported_trace_ids()


def test_ok_fast_trace_is_dropped_unless_baseline(make_pipeline: PipelineFactory) -> None:
    """Of ok, fast traces only those in the consistent baseline share are exported."""
    pipeline = make_pipeline(ratio=0.1)
    dropped = request(pipeline, OUTSIDE_BASELINE_RANDOMNESS, serial=1)
    kept = request(pipeline, BASELINE_RANDOMNESS, serial=2)
    pipeline.flush()
    assert pipeline.exported_trace_ids() == {kept}
    assert len(spans_of(pipeline, kept)) == 4
    assert dropped not in pipeline.exported_trace_ids()
    assert pipeline.metric(TRACES) == {
        (("decision", "dropped"), ("reason", "ok")): 1,
        (("decision", "kept"), ("reason", "baseline")): 1,
    }


def test_keep_errors_off_drops_failing_traces(make_pipeline: PipelineFactory) -> None:
    """With `keep_errors` off, an error alone no longer keeps a trace, while the same
    pipeline still exports a slow one."""
    pipeline = make_pipeline(keep_errors=False, slow_threshold_ms=100.0)
    failing = request(pipeline, failing_child=0)
    slow = request(pipeline, serial=1, duration_ms=150.0)
    pipeline.flush()
    assert spans_of(pipeline, failing) == []
    assert spans_of(pipeline, slow) == ["GET api/v1/leads/", "SELECT", "SELECT", "SELECT"]


def test_late_span_follows_a_kept_decision(make_pipeline: PipelineFactory) -> None:
    """A span ending after its kept trace was decided is exported and counted as late."""
    pipeline = make_pipeline()
    trace_id = trace_id_with(OUTSIDE_BASELINE_RANDOMNESS, 0)
    pipeline.ids.next_trace_ids.append(trace_id)
    root = pipeline.tracer.start_span("GET")
    root.set_status(Status(StatusCode.ERROR))
    root.end()  # no open child: decided now
    pipeline.tracer.start_span("on_commit", context=set_span_in_context(root)).end()
    pipeline.flush()
    assert spans_of(pipeline, trace_id) == ["GET", "on_commit"]
    assert pipeline.metric(LATE) == {(("decision", "kept"),): 1}


def test_late_span_follows_a_dropped_decision(make_pipeline: PipelineFactory) -> None:
    """A span ending after its dropped trace was decided is dropped too, even if it fails."""
    pipeline = make_pipeline()
    root = pipeline.tracer.start_span("GET")
    root.end()
    late = pipeline.tracer.start_span("on_commit", context=set_span_in_context(root))
    late.set_status(Status(StatusCode.ERROR))
    late.end()
    pipeline.flush()
    assert pipeline.exported() == []
    assert pipeline.metric(LATE) == {(("decision", "dropped"),): 1}


def test_open_child_ending_within_the_grace_joins_the_decision(
    make_pipeline: PipelineFactory,
) -> None:
    """A child still open when the root ends is waited for, and its error keeps the trace."""
    pipeline = make_pipeline(root_grace_ms=10_000.0)
    root = pipeline.tracer.start_span("GET")
    child = pipeline.tracer.start_span("task", context=set_span_in_context(root))
    root.end()
    child.set_status(Status(StatusCode.ERROR))
    child.end()
    pipeline.processor._export(everything=True)  # export what is decided, decide nothing
    assert sorted(s.name for s in pipeline.exported()) == ["GET", "task"]
    assert pipeline.metric(LATE) == {}


def test_grace_running_out_decides_the_trace(make_pipeline: PipelineFactory) -> None:
    """When an open child outlives the root's grace, the trace is decided without it."""
    pipeline = make_pipeline(root_grace_ms=20.0)
    root = pipeline.tracer.start_span("GET")
    root.set_status(Status(StatusCode.ERROR))
    child = pipeline.tracer.start_span("task", context=set_span_in_context(root))
    root.end()
    assert wait_until(lambda: [s.name for s in pipeline.exported()] == ["GET"])
    assert pipeline.metric(FORCED) == {}
    child.end()
    assert wait_until(lambda: len(pipeline.exported()) == 2)
    assert pipeline.metric(LATE) == {(("decision", "kept"),): 1}


def test_span_cap_forces_the_decision(make_pipeline: PipelineFactory) -> None:
    """A trace reaching `max_spans_per_trace` is decided at once, and the cap is counted."""
    pipeline = make_pipeline(max_spans_per_trace=5)
    root = pipeline.tracer.start_span("batch import")
    context = set_span_in_context(root)
    for index in range(5):
        child = pipeline.tracer.start_span("INSERT", context=context)
        if index == 4:
            child.set_status(Status(StatusCode.ERROR))
        child.end()
    assert pipeline.metric(FORCED) == {(("cap", "trace_spans"),): 1}
    assert pipeline.metric(TRACES) == {(("decision", "kept"), ("reason", "error")): 1}
    root.end()  # the rest follows the decision
    pipeline.flush()
    assert len(pipeline.exported()) == 6
    assert pipeline.metric(LATE) == {(("decision", "kept"),): 1}


def test_buffer_cap_forces_decisions_on_the_oldest_traces(make_pipeline: PipelineFactory) -> None:
    """Past `max_buffered_spans` the oldest trace is decided early, and the cap is counted."""
    pipeline = make_pipeline(max_buffered_spans=10)
    roots = []
    for _ in range(3):
        root = pipeline.tracer.start_span("GET")
        roots.append(root)
        for _ in range(4):
            pipeline.tracer.start_span("SELECT", context=set_span_in_context(root)).end()
    # 12 spans arrived, 10 may be held: the first trace (4 spans) was decided.
    assert pipeline.metric(FORCED) == {(("cap", "buffer"),): 1}
    assert pipeline.metric(TRACES) == {(("decision", "dropped"), ("reason", "forced")): 1}
    assert pipeline.processor._buffer.buffered == 8
    for root in roots:
        root.end()


def test_age_cap_forces_the_decision(make_pipeline: PipelineFactory) -> None:
    """A trace older than `max_trace_age_ms` is decided by the worker, and the cap is counted."""
    pipeline = make_pipeline(max_trace_age_ms=30.0)
    root = pipeline.tracer.start_span("long poll")
    pipeline.tracer.start_span("SELECT", context=set_span_in_context(root)).end()
    assert wait_until(lambda: pipeline.metric(FORCED) == {(("cap", "trace_age"),): 1})
    assert pipeline.metric(TRACES) == {(("decision", "dropped"), ("reason", "forced")): 1}
    root.end()


def test_forced_decision_keeps_a_root_already_slow(make_pipeline: PipelineFactory) -> None:
    """A forced decision keeps the trace when its open root has already run past the threshold."""
    pipeline = make_pipeline(max_spans_per_trace=2, slow_threshold_ms=1.0)
    root = pipeline.tracer.start_span("GET", start_time=1_000)  # started long ago
    for _ in range(2):
        pipeline.tracer.start_span("SELECT", context=set_span_in_context(root)).end()
    assert pipeline.metric(TRACES) == {(("decision", "kept"), ("reason", "slow")): 1}
    root.end()


def test_upstream_sampled_parent_is_kept(make_pipeline: PipelineFactory) -> None:
    """A trace whose remote parent was sampled upstream is kept, outside the baseline too."""
    pipeline = make_pipeline(ratio=0.1)
    trace_id = trace_id_with(OUTSIDE_BASELINE_RANDOMNESS, 0)
    parent = SpanContext(
        trace_id, 0x1234, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)
    )
    context = set_span_in_context(NonRecordingSpan(parent))
    root = pipeline.tracer.start_span("run/leads.tasks.score", context=context)
    pipeline.tracer.start_span("SELECT", context=set_span_in_context(root)).end()
    root.end()
    pipeline.flush()
    assert spans_of(pipeline, trace_id) == ["SELECT", "run/leads.tasks.score"]
    assert pipeline.metric(TRACES) == {(("decision", "kept"), ("reason", "upstream")): 1}


def test_development_keeps_everything(make_pipeline: PipelineFactory) -> None:
    """In development every trace is kept whole, counted with reason `development`."""
    pipeline = make_pipeline(ratio=1.0, keep_all=True)
    trace_ids = {request(pipeline, OUTSIDE_BASELINE_RANDOMNESS, serial=i) for i in range(20)}
    pipeline.flush()
    assert pipeline.exported_trace_ids() == trace_ids
    assert len(pipeline.exported()) == 20 * 4
    assert pipeline.metric(TRACES) == {(("decision", "kept"), ("reason", "development")): 20}


def test_force_flush_decides_and_exports_held_traces(make_pipeline: PipelineFactory) -> None:
    """`force_flush` decides held traces with what they have and exports the kept ones."""
    pipeline = make_pipeline()
    root = pipeline.tracer.start_span("GET")
    failing = pipeline.tracer.start_span("SELECT", context=set_span_in_context(root))
    failing.set_status(Status(StatusCode.ERROR))
    failing.end()
    assert pipeline.exported() == []
    pipeline.flush()
    assert [s.name for s in pipeline.exported()] == ["SELECT"]
    assert pipeline.metric(FORCED) == {(("cap", "flush"),): 1}
    root.end()


def test_shutdown_decides_and_exports_held_traces(make_pipeline: PipelineFactory) -> None:
    """`shutdown` decides held traces, exports the kept ones and shuts the exporter down."""
    pipeline = make_pipeline()
    root = pipeline.tracer.start_span("GET")
    failing = pipeline.tracer.start_span("SELECT", context=set_span_in_context(root))
    failing.set_status(Status(StatusCode.ERROR))
    failing.end()
    pipeline.processor.shutdown()
    assert [s.name for s in pipeline.exported()] == ["SELECT"]
    assert not pipeline.processor.force_flush()


def test_full_export_queue_drops_and_counts(make_pipeline: PipelineFactory) -> None:
    """Kept spans that do not fit the export queue are dropped and counted, never silently."""
    pipeline = make_pipeline(export_queue_size=3, schedule_delay_millis=60_000.0)
    request(pipeline, children=4, failing_child=0)  # 5 spans released at once
    assert pipeline.metric(DROPPED) == {(("reason", "queue_full"),): 2}
    pipeline.flush()
    assert len(pipeline.exported()) == 3


def test_baseline_reason_is_recorded_once_per_trace(make_pipeline: PipelineFactory) -> None:
    """Baseline traces skip the buffer and count one decision per local root."""
    pipeline = make_pipeline(ratio=0.1)
    request(pipeline, BASELINE_RANDOMNESS, children=5)
    assert pipeline.processor._buffer.buffered == 0
    assert pipeline.metric(TRACES) == {(("decision", "kept"), ("reason", Reason.BASELINE.value)): 1}


def test_exporter_failure_is_logged_and_the_worker_goes_on(make_pipeline: PipelineFactory) -> None:
    """An exporter raising is logged once per batch and later batches still export."""
    pipeline = make_pipeline(keep_all=True, ratio=1.0)
    calls: list[int] = []
    real_export = pipeline.exporter.export

    def flaky_export(spans):  # type: ignore[no-untyped-def]
        calls.append(len(spans))
        if len(calls) == 1:
            raise ConnectionError("collector down")
        return real_export(spans)

    pipeline.exporter.export = flaky_export  # type: ignore[method-assign]
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("sampling._tail")
    logger.addHandler(handler)
    try:
        pipeline.tracer.start_span("first").end()
        pipeline.flush()
        pipeline.tracer.start_span("second").end()
        pipeline.flush()
    finally:
        logger.removeHandler(handler)
    assert [s.name for s in pipeline.exported()] == ["second"]
    assert [r.getMessage() for r in records] == ["Exporting 1 kept spans failed"]


def _remote_parent(trace_id: int, span_id: int) -> Context:
    parent = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(0))
    return set_span_in_context(NonRecordingSpan(parent))


def test_a_later_local_root_of_a_dropped_trace_is_decided_anew(
    make_pipeline: PipelineFactory,
) -> None:
    """Two tasks of one upstream trace run in one process: the first is ok and dropped, the
    second fails, and the second is kept whole."""
    pipeline = make_pipeline(root_grace_ms=0.0)
    trace_id = (5 << 64) | 1
    for producer, fail in ((0xA1, False), (0xA2, True)):
        run = pipeline.tracer.start_span(
            f"run/task-{producer:x}", context=_remote_parent(trace_id, producer)
        )
        pipeline.tracer.start_span("SELECT", context=set_span_in_context(run)).end()
        if fail:
            run.set_status(Status(StatusCode.ERROR, "boom"))
        run.end()
    pipeline.flush()
    assert sorted(s.name for s in pipeline.exported()) == ["SELECT", "run/task-a2"]


def test_overlapping_local_roots_are_decided_when_the_last_one_ends(
    make_pipeline: PipelineFactory,
) -> None:
    """With two local roots of one trace open at once, the first one ending does not decide
    the trace: an error in the second one keeps both."""
    pipeline = make_pipeline(root_grace_ms=0.0)
    trace_id = (6 << 64) | 1
    first = pipeline.tracer.start_span("run/a", context=_remote_parent(trace_id, 0xB1))
    second = pipeline.tracer.start_span("run/b", context=_remote_parent(trace_id, 0xB2))
    first.end()
    time.sleep(0.2)  # a decision taken when the first root ended would be exported by now
    assert pipeline.exported() == []
    second.set_status(Status(StatusCode.ERROR, "boom"))
    second.end()
    pipeline.flush()
    assert sorted(s.name for s in pipeline.exported()) == ["run/a", "run/b"]


def test_buffer_cap_never_decides_requests_still_in_flight(
    make_pipeline: PipelineFactory,
) -> None:
    """At the buffered-span cap, traces holding no spans yet (open requests) are not forced:
    deciding them frees nothing, and their later errors are still kept."""
    pipeline = make_pipeline(max_buffered_spans=10, root_grace_ms=0.0)
    in_flight = [pipeline.tracer.start_span(f"GET /{i}") for i in range(20)]
    busy = pipeline.tracer.start_span("GET /busy")
    for _ in range(11):
        pipeline.tracer.start_span("SELECT", context=set_span_in_context(busy)).end()
    assert pipeline.metric(FORCED) == {(("cap", "buffer"),): 1}
    for root in in_flight:
        root.set_status(Status(StatusCode.ERROR, "boom"))
        root.end()
    busy.end()
    pipeline.flush()
    assert {s.name for s in pipeline.exported()} >= {f"GET /{i}" for i in range(20)}

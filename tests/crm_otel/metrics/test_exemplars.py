"""Exemplars: only of traces the tail sampler kept, one per bucket, merged across
processes, and served as OpenMetrics that prometheus_client's parser accepts."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from crm_otel.metrics import _exemplars, _runtime, decision_listener
from crm_otel.metrics._exemplars import Exemplar, ExemplarStore, merge_exemplars, preferred
from crm_otel.metrics._exposition import render_openmetrics, wants_openmetrics
from crm_otel.metrics._instruments import MS_BUCKETS
from crm_otel.metrics._merge import ProcessState
from crm_otel.metrics._store import GroupStore
from crm_otel.metrics._values import Histogram
from sampling import ConsistentBaselineSampler, Reason, SamplingPolicy, TailSamplingProcessor
from semconv.metrics import CATALOGUE

HTTP = "http_request_duration_ms"
GET = (("method", "GET"), ("path", "/api/v1/leads/"), ("status", "200"))
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


def _listening() -> ExemplarStore:
    """A store a tail sampler tells its decisions to."""
    store = ExemplarStore()
    store.listening = True
    return store


def _context(trace_id: int, span_id: int = 1) -> SpanContext:
    return SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(0))


def _offer(store: ExemplarStore, trace_id: int, value: float, **labels: str) -> None:
    store.offer(HTTP, MS_BUCKETS, value, labels or dict(GET), _context(trace_id))


def _exemplar(trace: int, value: float, at: float, interesting: bool = False) -> Exemplar:
    return Exemplar(f"{trace:032x}", f"{1:016x}", value, at, interesting)


def test_kept_traces_become_exemplars_and_dropped_ones_vanish() -> None:
    """A kept trace's measurement is its bucket's exemplar; a dropped trace's never is,
    and neither is a measurement outside any trace."""
    store = _listening()
    _offer(store, 0xA, 30.0)
    _offer(store, 0xB, 600.0)
    store.offer(HTTP, MS_BUCKETS, 7.0, dict(GET))  # no current span
    store.decided(0xA, True, Reason.BASELINE)
    store.decided(0xB, False, Reason.OK)
    confirmed = store.confirmed()
    assert list(confirmed) == [(HTTP, GET, MS_BUCKETS.index(50))]
    exemplar = confirmed[HTTP, GET, MS_BUCKETS.index(50)]
    assert (exemplar.trace_id, exemplar.value, exemplar.interesting) == (f"{0xA:032x}", 30.0, False)


def test_a_measurement_after_its_kept_decision_is_confirmed_at_once() -> None:
    """A measurement ending after its trace was kept (a late query) still becomes an exemplar."""
    store = _listening()
    store.decided(0xC, True, Reason.SLOW)
    _offer(store, 0xC, 800.0)
    (exemplar,) = store.confirmed().values()
    assert exemplar.interesting and exemplar.value == 800.0


def test_errors_and_slow_traces_hold_their_bucket_against_plain_ones_for_a_while() -> None:
    """An error's exemplar beats a newer baseline one within `STICKY_S`, not after it;
    between equals the newer wins."""
    error = _exemplar(1, 40.0, 1000.0, interesting=True)
    soon = _exemplar(2, 41.0, 1000.0 + _exemplars.STICKY_S - 1)
    late = _exemplar(3, 42.0, 1000.0 + _exemplars.STICKY_S + 1)
    assert preferred(soon, error) is error
    assert preferred(error, late) is late
    assert preferred(soon, late) is late


def test_caps_bound_pending_traces_and_candidates_per_trace() -> None:
    """Beyond the pending-trace cap the oldest trace's candidates go; beyond the per-trace
    cap new buckets are turned away; both are counted."""
    store = _listening()
    for trace in range(1, _exemplars.MAX_PENDING_TRACES + 2):
        _offer(store, trace, 3.0)
    assert store.turned_away == 1
    store.decided(1, True, Reason.ERROR)  # the evicted one
    assert store.confirmed() == {}
    store = _listening()
    for index in range(_exemplars.MAX_CANDIDATES_PER_TRACE + 5):
        _offer(store, 0xFFFF, 3.0, path=f"/p{index}/")
    assert store.turned_away == 5
    store.decided(0xFFFF, True, Reason.ERROR)
    assert len(store.confirmed()) == _exemplars.MAX_CANDIDATES_PER_TRACE


def test_state_files_carry_exemplars_and_a_scrape_merges_them(tmp_path: Path) -> None:
    """Two processes' exemplars of one bucket merge to the preferred one; other buckets stay."""
    store = GroupStore(str(tmp_path))
    key_low, key_high = (HTTP, GET, 2), (HTTP, GET, 8)
    error = _exemplar(1, 20.0, 100.0, interesting=True)
    plain = _exemplar(2, 21.0, 110.0)
    slow = _exemplar(3, 600.0, 120.0, interesting=True)
    pid, now = os.getpid(), time.time()
    store.write(ProcessState(pid, "a", now, {}, {key_low: error}), None)
    own = ProcessState(pid, "b", now, {}, {key_low: plain, key_high: slow})
    result = store.collect(own)
    assert result.exemplars == {key_low: error, key_high: slow}
    assert merge_exemplars([{key_low: plain}]) == {key_low: plain}


def test_openmetrics_output_parses_and_carries_exemplars_on_their_buckets() -> None:
    """The OpenMetrics body ends in `# EOF`, types counters without `_total`, and puts
    the exemplar on its bucket line, as prometheus_client's OpenMetrics parser reads it."""
    hist = Histogram(MS_BUCKETS, (0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0), 631.0)
    exemplar = _exemplar(0xABC, 600.0, 1764412345.5, interesting=True)
    body = render_openmetrics(
        {HTTP: {GET: hist}, "http_requests_total": {GET: 2.0}}, {(HTTP, GET, 8): exemplar}
    ).decode()
    assert body.endswith("# EOF\n")
    assert "# TYPE http_requests counter" in body
    line = next(x for x in body.splitlines() if 'le="750.0"' in x)
    assert line.endswith(f'# {{span_id="{1:016x}",trace_id="{0xABC:032x}"}} 600.0 1764412345.5')
    families = {f.name: f for f in text_string_to_metric_families(body)}
    samples = [s for s in families[HTTP].samples if s.exemplar is not None]
    assert [(s.labels["le"], s.exemplar.labels["trace_id"]) for s in samples] == [
        ("750.0", f"{0xABC:032x}")
    ]
    assert families["http_requests"].samples[0].value == 2.0
    every = list(text_string_to_metric_families(render_openmetrics({}, {}).decode()))
    assert len(every) == len(CATALOGUE)


def test_prometheus_accept_header_asks_for_openmetrics() -> None:
    """Prometheus's Accept header takes OpenMetrics; plain text or a zero weight does not."""
    assert wants_openmetrics(PROMETHEUS_ACCEPT)
    assert not wants_openmetrics("text/plain;version=0.0.4")
    assert not wants_openmetrics(None)
    assert not wants_openmetrics("application/openmetrics-text;q=0")


def _pipeline(runtime: _runtime.Runtime) -> tuple[TracerProvider, TailSamplingProcessor]:
    policy = SamplingPolicy(ratio=0.0, slow_threshold_ms=10_000.0)
    processor = TailSamplingProcessor(
        InMemorySpanExporter(),
        policy,
        meter_provider=MeterProvider(),
        on_decision=decision_listener(),
    )
    provider = TracerProvider(sampler=ConsistentBaselineSampler.from_policy(policy))
    provider.add_span_processor(processor)
    return provider, processor


def _served_exemplars(runtime: _runtime.Runtime) -> dict[str, Any]:
    status, content_type, body = runtime.scrape(None, PROMETHEUS_ACCEPT)
    assert status == 200 and content_type.startswith("application/openmetrics-text")
    return {
        s.exemplar.labels["trace_id"]: s
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.exemplar is not None
    }


def test_a_scrape_shows_the_failed_request_and_not_the_dropped_one(
    runtime: _runtime.Runtime,
) -> None:
    """Through the real instruments and tail sampler, the failing request's trace is on
    its bucket and the dropped ok request's trace is nowhere; Prometheus text has none."""
    provider, _ = _pipeline(runtime)
    tracer = provider.get_tracer("test")
    duration = runtime.instruments.http_request_duration
    with tracer.start_as_current_span("GET ok") as ok:
        duration.record(12.0, {"method": "GET", "path": "/ok/", "status": "200"})
    with tracer.start_as_current_span("GET boom") as boom:
        duration.record(30.0, {"method": "GET", "path": "/boom/", "status": "500"})
        boom.set_status(Status(StatusCode.ERROR))
    served = _served_exemplars(runtime)
    boom_id = f"{boom.get_span_context().trace_id:032x}"
    assert list(served) == [boom_id]
    assert served[boom_id].labels["le"] == "50.0" and served[boom_id].exemplar.value == 30.0
    assert f"{ok.get_span_context().trace_id:032x}" not in str(served)
    _, content_type, body = runtime.scrape(None, "text/plain")
    assert content_type.startswith("text/plain") and b"trace_id" not in body
    provider.shutdown()


def test_workflow_exemplars_name_the_workflow_span_itself(runtime: _runtime.Runtime) -> None:
    """A kept workflow root's duration exemplar names its own trace and span, though the
    span is no longer current when its metrics are recorded."""
    from crm_otel.metrics._spans import BusinessMetricsProcessor

    provider, _ = _pipeline(runtime)
    provider._active_span_processor._span_processors = (
        BusinessMetricsProcessor(),
        *provider._active_span_processor._span_processors,
    )
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("workflow.execute", {"workflow.name": "w"}) as span:
        span.set_status(Status(StatusCode.ERROR))
    served = _served_exemplars(runtime)
    context = span.get_span_context()
    sample = served[f"{context.trace_id:032x}"]
    assert sample.name == "workflow_duration_ms_bucket"
    assert sample.exemplar.labels["span_id"] == f"{context.span_id:016x}"
    provider.shutdown()


def test_the_switch_turns_exemplars_and_openmetrics_off(tmp_path: Path) -> None:
    """With `CRM_OTEL_METRICS_EXEMPLARS=false` nothing is held and Prometheus text is served
    even to a scraper asking for OpenMetrics."""
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from crm_otel.metrics import _build_runtime
    from crm_otel.metrics._instruments import views
    from crm_otel.metrics._settings import MetricsSettings

    settings = MetricsSettings.from_env(
        {"CRM_OTEL_METRICS_DIR": str(tmp_path), "CRM_OTEL_METRICS_EXEMPLARS": "false"}
    )
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=views())
    built = _build_runtime(settings, provider, reader)
    try:
        assert built.exemplars is None
        built.instruments.http_request_duration.record(5.0, {"method": "GET"})
        _, content_type, body = built.scrape(None, PROMETHEUS_ACCEPT)
        assert content_type.startswith("text/plain") and not body.endswith(b"# EOF\n")
    finally:
        built.recorder.shutdown()
        provider.shutdown()


@pytest.mark.parametrize("kept", [True, False])
def test_the_sampler_decision_alone_decides(kept: bool) -> None:
    """The same measurement becomes an exemplar exactly when its trace is kept."""
    store = _listening()
    _offer(store, 0xD, 5.0)
    store.decided(0xD, kept, Reason.ERROR if kept else Reason.OK)
    assert bool(store.confirmed()) is kept


def test_candidates_turned_away_are_counted_on_the_scrape(runtime: _runtime.Runtime) -> None:
    """Buckets beyond a trace's cap are counted on `crm_otel_metrics_exemplars_dropped_total`."""
    store = runtime.exemplars
    assert store is not None and decision_listener() is not None
    for index in range(_exemplars.MAX_CANDIDATES_PER_TRACE + 2):
        _offer(store, 0xE, 3.0, path=f"/p{index}/")
    families = runtime.recorder.collect().families
    assert families["crm_otel_metrics_exemplars_dropped_total"] == {(): 2.0}


def test_nothing_is_held_until_a_tail_sampler_listens() -> None:
    """Without a tail sampler to decide (no trace exporter, tail sampling off) measurements
    are neither held nor counted as turned away."""
    quiet, listening = ExemplarStore(), _listening()
    for store in (quiet, listening):
        for trace in range(_exemplars.MAX_PENDING_TRACES + 10):
            _offer(store, trace + 11, 3.0)
        store.decided(_exemplars.MAX_PENDING_TRACES + 20, True, Reason.ERROR)  # the newest
    assert quiet.confirmed() == {} and quiet.turned_away == 0
    # The same offers to a store a tail sampler listens to are held, and the cap turns some away.
    assert len(listening.confirmed()) == 1 and listening.turned_away == 10


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_starts_with_no_exemplars_of_its_parent() -> None:
    """A forked worker holds neither its parent's exemplars nor its pending candidates, and
    records its own."""
    store = _listening()
    _offer(store, 0x1, 3.0)
    store.decided(0x1, True, Reason.ERROR)
    _offer(store, 0x2, 3.0)  # pending in the parent at fork time
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        status = 1
        try:
            os.close(read_end)
            inherited = len(store.confirmed())
            store.decided(0x2, True, Reason.ERROR)
            after_parent_trace = len(store.confirmed())
            _offer(store, 0x3, 3.0)
            store.decided(0x3, True, Reason.SLOW)
            own = [e.trace_id for e in store.confirmed().values()]
            os.write(write_end, repr((inherited, after_parent_trace, own)).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    report = os.read(read_end, 65536).decode()
    os.close(read_end)
    assert os.waitstatus_to_exitcode(status) == 0
    assert report == repr((0, 0, [f"{0x3:032x}"]))
    assert [e.trace_id for e in store.confirmed().values()] == [f"{0x1:032x}"]


@pytest.mark.parametrize(
    ("exporters", "environ", "off"),
    [
        ({}, {}, True),
        ({"otlp": object}, {}, False),
        ({}, {"OTEL_METRICS_EXEMPLAR_FILTER": "always_on"}, False),
    ],
)
def test_sdk_exemplars_are_off_unless_an_exporter_reads_them(
    exporters: dict[str, Any], environ: dict[str, str], off: bool
) -> None:
    """The SDK offers measurements to its own exemplar reservoirs only for a metric exporter
    or when `OTEL_METRICS_EXEMPLAR_FILTER` asks; crm-otel's exemplars do not need them."""
    from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter

    from crm_otel.metrics import _sdk_exemplar_filter

    chosen = _sdk_exemplar_filter(exporters, environ)
    assert isinstance(chosen, AlwaysOffExemplarFilter) if off else chosen is None

"""Consistency across services and the baseline rate, over many seeded trace ids."""

from __future__ import annotations

import math
import random
from statistics import NormalDist

from opentelemetry.propagators.textmap import DefaultGetter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace import set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from sampling import threshold_for
from sampling._threshold import MAX_THRESHOLD, RANDOMNESS_MASK
from tests.sampling.conftest import PipelineFactory

PROPAGATOR = TraceContextTextMapPropagator()


def seeded_trace_ids(count: int, seed: int) -> list[int]:
    """`count` distinct random 128-bit trace ids from `seed`."""
    rng = random.Random(seed)
    ids: set[int] = set()
    while len(ids) < count:
        ids.add(rng.getrandbits(128) or 1)
    return sorted(ids)


def test_two_services_agree_on_every_baseline_decision(make_pipeline: PipelineFactory) -> None:
    """Two services deciding alone keep the same baseline traces, those OTEP 235 picks."""
    trace_ids = seeded_trace_ids(10_000, seed=235)
    services = [make_pipeline(ratio=0.1, seed=s) for s in (1, 2)]
    for service in services:
        service.ids.next_trace_ids.extend(trace_ids)
        for _ in trace_ids:
            service.tracer.start_span("GET").end()
        service.flush()
    kept_a, kept_b = (service.exported_trace_ids() for service in services)
    threshold = threshold_for(0.1)
    expected = {t for t in trace_ids if t & RANDOMNESS_MASK >= threshold}
    assert kept_a == kept_b == expected
    assert 0 < len(expected) < len(trace_ids)


def test_plain_parent_based_downstream_keeps_exactly_the_baseline(
    make_pipeline: PipelineFactory,
) -> None:
    """A downstream service with a plain `ParentBased` sampler receives exactly the baseline."""
    trace_ids = seeded_trace_ids(10_000, seed=168)
    upstream = make_pipeline(ratio=0.1)
    upstream.ids.next_trace_ids.extend(trace_ids)
    downstream_exporter = InMemorySpanExporter()
    downstream = TracerProvider(sampler=ParentBased(ALWAYS_OFF), shutdown_on_exit=False)
    downstream.add_span_processor(SimpleSpanProcessor(downstream_exporter))
    tracer = downstream.get_tracer("downstream")
    headers: dict[str, str] = {}
    for _ in trace_ids:
        root = upstream.tracer.start_span("GET")
        headers.clear()
        PROPAGATOR.inject(headers, context=set_span_in_context(root))
        tracer.start_span(
            "POST /score", context=PROPAGATOR.extract(headers, getter=DefaultGetter())
        ).end()
        root.end()
    upstream.flush()
    downstream_kept = {
        s.context.trace_id for s in downstream_exporter.get_finished_spans() if s.context
    }
    assert downstream_kept == upstream.exported_trace_ids()
    assert all(
        s.context.trace_state.get("ot") == "th:e6666666666666"
        for s in downstream_exporter.get_finished_spans()
        if s.context
    )
    downstream.shutdown()


def test_baseline_rate_lies_in_the_binomial_band(make_pipeline: PipelineFactory) -> None:
    """Over 20,000 seeded ok traces at ratio 0.1 the kept count is inside a 99.9% band."""
    n = 20_000
    pipeline = make_pipeline(ratio=0.1, seed=20_000)
    for _ in range(n):
        root = pipeline.tracer.start_span("GET")
        pipeline.tracer.start_span("SELECT", context=set_span_in_context(root)).end()
        root.end()
    pipeline.flush()
    kept = len(pipeline.exported_trace_ids())
    p = 1 - threshold_for(0.1) / MAX_THRESHOLD  # the exact share the threshold keeps
    z = NormalDist().inv_cdf(1 - 0.001 / 2)
    half_width = z * math.sqrt(n * p * (1 - p))
    assert abs(kept - n * p) <= half_width, (kept, n * p, half_width)
    assert len(pipeline.exported()) == 2 * kept  # kept traces are whole

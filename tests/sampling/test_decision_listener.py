"""The tail stage's decision listener: every local decision heard once, outside the lock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode, set_span_in_context

from sampling import ConsistentBaselineSampler, Reason, SamplingPolicy, TailSamplingProcessor
from tests.sampling.conftest import (
    BASELINE_RANDOMNESS,
    OUTSIDE_BASELINE_RANDOMNESS,
    SeededIds,
    trace_id_with,
)

Heard = list[tuple[int, bool, Reason, bool]]


@pytest.fixture
def heard() -> Iterator[tuple[TracerProvider, TailSamplingProcessor, InMemorySpanExporter, Heard]]:
    """A pipeline at ratio 0.5 whose listener notes each decision and whether it could
    take the processor's lock."""
    policy = SamplingPolicy(ratio=0.5, slow_threshold_ms=100.0, root_grace_ms=1000.0)
    exporter = InMemorySpanExporter()
    decisions: Heard = []
    processor: TailSamplingProcessor

    def listener(trace_id: int, kept: bool, reason: Reason) -> None:
        free = processor._lock.acquire(blocking=False)
        if free:
            processor._lock.release()
        decisions.append((trace_id, kept, reason, free))

    processor = TailSamplingProcessor(
        exporter,
        policy,
        meter_provider=MeterProvider(),
        schedule_delay_millis=10.0,
        on_decision=listener,
    )
    provider = TracerProvider(
        sampler=ConsistentBaselineSampler.from_policy(policy),
        id_generator=SeededIds(3),
        shutdown_on_exit=False,
    )
    provider.add_span_processor(processor)
    yield provider, processor, exporter, decisions
    provider.shutdown()


def _trace(
    provider: TracerProvider, trace_id: int, *, fail: bool = False, duration_ms: float = 1.0
) -> None:
    ids = provider.id_generator
    assert isinstance(ids, SeededIds)
    ids.next_trace_ids.append(trace_id)
    tracer = provider.get_tracer("test")
    start = 1_700_000_000_000_000_000
    root = tracer.start_span("GET api/v1/leads/", start_time=start)
    child = tracer.start_span("SELECT", context=set_span_in_context(root), start_time=start + 10)
    if fail:
        child.set_status(Status(StatusCode.ERROR))
    child.end(end_time=start + 20)
    root.end(end_time=start + int(duration_ms * 1_000_000))


def test_each_decision_is_heard_once_with_its_reason_outside_the_lock(
    heard: tuple[TracerProvider, TailSamplingProcessor, InMemorySpanExporter, Heard],
) -> None:
    """Kept errors, slow and baseline traces and dropped ok ones are each heard once, with
    their reason, while the processor's lock is free."""
    provider, processor, _, decisions = heard
    error = trace_id_with(OUTSIDE_BASELINE_RANDOMNESS, 1)
    slow = trace_id_with(OUTSIDE_BASELINE_RANDOMNESS, 2)
    ok = trace_id_with(OUTSIDE_BASELINE_RANDOMNESS, 3)
    baseline = trace_id_with(BASELINE_RANDOMNESS, 4)
    _trace(provider, error, fail=True)
    _trace(provider, slow, duration_ms=150.0)
    _trace(provider, ok)
    _trace(provider, baseline)
    processor.force_flush()
    assert decisions == [
        (error, True, Reason.ERROR, True),
        (slow, True, Reason.SLOW, True),
        (ok, False, Reason.OK, True),
        (baseline, True, Reason.BASELINE, True),
    ]


def test_a_failing_listener_never_stops_the_export(
    heard: tuple[TracerProvider, TailSamplingProcessor, InMemorySpanExporter, Heard],
) -> None:
    """A listener that raises is logged once; the kept trace is still exported whole."""
    provider, processor, exporter, _ = heard

    def broken(trace_id: int, kept: bool, reason: Reason) -> None:
        raise RuntimeError("listener bug")

    processor._on_decision = broken
    error = trace_id_with(OUTSIDE_BASELINE_RANDOMNESS, 5)
    _trace(provider, error, fail=True)
    processor.force_flush()
    exported = [s.name for s in exporter.get_finished_spans() if s.context.trace_id == error]
    assert sorted(exported) == ["GET api/v1/leads/", "SELECT"]

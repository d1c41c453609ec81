"""The relay: a task kept for an error keeps the dropped web trace that enqueued it, within
the hold's time and span caps (two in-process pipelines over an in-memory channel)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)

from sampling import (
    ConsistentBaselineSampler,
    Exchange,
    Reply,
    SamplingPolicy,
    TailSamplingProcessor,
    TraceRelay,
)
from semconv.attributes import SAMPLING_UPSTREAM_RELEASED
from tests.sampling.conftest import OUTSIDE_BASELINE_RANDOMNESS, Pipeline, SeededIds, trace_id_with

HELD = "crm_otel.sampling.held_traces"
SPANS_HELD = "crm_otel.sampling.spans_held"
RELEASED = "crm_otel.sampling.upstream_released"
ERRORS = "crm_otel.sampling.relay_errors"


@dataclass
class Bus:
    """The channel's contract in memory: a log of signals and a set of released ids, each
    round applied at once."""

    log: list[str] = field(default_factory=list)
    released: set[str] = field(default_factory=set)
    down: bool = False

    def channel(self) -> Channel:
        return Channel(self)


@dataclass
class Channel:
    bus: Bus
    position: int = 0
    rounds: int = 0

    def __call__(self, exchange: Exchange) -> Reply:
        if self.bus.down:
            raise ConnectionError("Redis is down")
        self.rounds += 1
        reply = Reply()
        self.bus.log.extend(exchange.signal)
        reply.released = {t for t in exchange.signal if t in self.bus.released}
        self.bus.released.update(exchange.released)
        self.bus.released.difference_update(exchange.unreleased)
        if exchange.poll:
            reply.kept = set(self.bus.log[self.position :])
            self.position = len(self.bus.log)
        return reply


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Side:
    pipeline: Pipeline
    relay: TraceRelay
    channel: Channel


def make_side(bus: Bus, clock: Clock, seed: int, max_held_spans: int = 1000) -> Side:
    """One process: tracer, head sampler, tail processor with a relay on `bus`, metrics."""
    policy = SamplingPolicy(ratio=0.0, root_grace_ms=1000.0, max_held_spans=max_held_spans)
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    channel = bus.channel()
    relay = TraceRelay(
        channel,
        hold_ms=5000,
        max_held_spans=policy.max_held_spans,
        interval_ms=60_000,  # rounds are run by the test
        meter_provider=meters,
        clock=clock,
    )
    exporter = InMemorySpanExporter()
    processor = TailSamplingProcessor(
        exporter, policy, meter_provider=meters, schedule_delay_millis=10.0, relay=relay
    )
    ids = SeededIds(seed)
    provider = TracerProvider(
        sampler=ConsistentBaselineSampler.from_policy(policy),
        id_generator=ids,
        shutdown_on_exit=False,
    )
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    return Side(Pipeline(provider, tracer, processor, exporter, reader, ids), relay, channel)


@pytest.fixture
def sides() -> Iterator[tuple[Side, Side, Bus, Clock]]:
    """A web and a worker process, each with a relay on one shared bus and clock."""
    bus, clock = Bus(), Clock()
    web, worker = make_side(bus, clock, 1), make_side(bus, clock, 2)
    yield web, worker, bus, clock
    for side in (web, worker):
        side.pipeline.provider.shutdown()


def web_request(web: Side, serial: int, enqueue: bool = True) -> tuple[int, SpanContext | None]:
    """An ok web request that enqueues a task; returns its trace id and the producer context."""
    trace_id = trace_id_with(OUTSIDE_BASELINE_RANDOMNESS, serial)
    web.pipeline.ids.next_trace_ids.append(trace_id)
    tracer = web.pipeline.tracer
    root = tracer.start_span("GET api/v1/leads/<int:pk>/sync/", kind=SpanKind.SERVER)
    context = set_span_in_context(root)
    tracer.start_span("SELECT", context=context, kind=SpanKind.CLIENT).end()
    producer_context = None
    if enqueue:
        producer = tracer.start_span(
            "apply_async/leads.tasks.sync_lead", context=context, kind=SpanKind.PRODUCER
        )
        producer_context = producer.get_span_context()
        producer.end()
    root.end()
    return trace_id, producer_context


def task(worker: Side, parent: SpanContext | None, fail: bool) -> None:
    """A Celery task run from the message `parent` sent (unsampled, remote)."""
    assert parent is not None
    remote = SpanContext(parent.trace_id, parent.span_id, True, TraceFlags(0))
    context = set_span_in_context(NonRecordingSpan(remote))
    consumer = worker.pipeline.tracer.start_span(
        "run/leads.tasks.sync_lead", context=context, kind=SpanKind.CONSUMER
    )
    if fail:
        consumer.set_status(Status(StatusCode.ERROR, "refused"))
    consumer.end()


def exported(side: Side, trace_id: int) -> list[ReadableSpan]:
    side.pipeline.processor.force_flush()
    return [s for s in side.pipeline.exported() if s.context and s.context.trace_id == trace_id]


def metric(side: Side, name: str) -> dict[tuple[tuple[str, object], ...], int | float]:
    return side.pipeline.metric(name)


def test_a_failed_task_keeps_the_web_request_that_enqueued_it(
    sides: tuple[Side, Side, Bus, Clock],
) -> None:
    """A dropped web trace with a producer span is held; the worker's failed task signals
    keep, and the next web round exports the web trace whole."""
    web, worker, _, _ = sides
    trace_id, producer = web_request(web, 1)
    assert metric(web, SPANS_HELD) == {(): 3}
    task(worker, producer, fail=True)
    assert worker.relay.run_round() is False  # the signal is sent, the task span exported
    web.relay.run_round()
    assert sorted(s.name for s in exported(web, trace_id)) == [
        "GET api/v1/leads/<int:pk>/sync/",
        "SELECT",
        "apply_async/leads.tasks.sync_lead",
    ]
    [consumer] = exported(worker, trace_id)
    assert SAMPLING_UPSTREAM_RELEASED not in (consumer.attributes or {})
    assert metric(web, HELD)[(("outcome", "kept"),)] == 1
    assert metric(web, SPANS_HELD) == {(): 0}


def test_an_ok_task_sends_nothing_and_the_hold_expires(
    sides: tuple[Side, Side, Bus, Clock],
) -> None:
    """An ok task is not signalled; at the end of the hold the web trace is dropped for
    good and counted as expired."""
    web, worker, bus, clock = sides
    trace_id, producer = web_request(web, 2)
    task(worker, producer, fail=False)
    assert worker.relay.run_round() is False and worker.channel.rounds == 0
    assert web.relay.run_round() is True  # polled: still held
    clock.now += 5.001
    assert web.relay.run_round() is False
    assert exported(web, trace_id) == [] and exported(worker, trace_id) == []
    assert metric(web, HELD)[(("outcome", "expired"),)] == 1
    assert bus.released == {f"{trace_id:032x}"}


def test_a_signal_after_the_hold_marks_the_task_span(
    sides: tuple[Side, Side, Bus, Clock],
) -> None:
    """A task that fails after its web part was dropped for good says so on its consumer
    span and in the worker's counter."""
    web, worker, _, clock = sides
    trace_id, producer = web_request(web, 3)
    clock.now += 6
    web.relay.run_round()
    task(worker, producer, fail=True)
    worker.relay.run_round()
    [consumer] = exported(worker, trace_id)
    assert consumer.attributes is not None
    assert consumer.attributes[SAMPLING_UPSTREAM_RELEASED] is True
    assert consumer.status.status_code is StatusCode.ERROR
    assert metric(worker, RELEASED) == {(): 1}
    assert exported(web, trace_id) == []


def test_a_signal_before_the_request_ends_still_keeps_it(
    sides: tuple[Side, Side, Bus, Clock],
) -> None:
    """A task that fails while its request is still running keeps the request when it ends."""
    web, worker, _, _ = sides
    held_id, _ = web_request(web, 4)  # something held, so the web side polls
    trace_id = trace_id_with(OUTSIDE_BASELINE_RANDOMNESS, 5)
    web.pipeline.ids.next_trace_ids.append(trace_id)
    root = web.pipeline.tracer.start_span("GET sync", kind=SpanKind.SERVER)
    producer = web.pipeline.tracer.start_span(
        "apply_async/leads.tasks.sync_lead",
        context=set_span_in_context(root),
        kind=SpanKind.PRODUCER,
    )
    producer.end()
    task(worker, producer.get_span_context(), fail=True)
    worker.relay.run_round()
    web.relay.run_round()  # reads the signal while the request is in flight
    root.end()
    web.relay.run_round()
    assert {s.name for s in exported(web, trace_id)} == {"GET sync", producer.name}
    assert exported(web, held_id) == []


def test_held_spans_stay_within_the_cap() -> None:
    """Past `max_held_spans` the oldest held traces are dropped for good, counted, and
    published as released."""
    bus = Bus()
    web = make_side(bus, Clock(), 3, max_held_spans=7)
    try:
        ids = [web_request(web, serial)[0] for serial in range(10, 20)]  # 3 spans each
        assert web.relay.held_spans == 6  # the last two traces
        assert metric(web, SPANS_HELD) == {(): 6}
        assert metric(web, HELD)[(("outcome", "overflow"),)] == 8
        web.relay.run_round()
        assert bus.released == {f"{t:032x}" for t in ids[:8]}
    finally:
        web.pipeline.provider.shutdown()


def test_traces_without_a_task_and_ok_tasks_are_left_alone(
    sides: tuple[Side, Side, Bus, Clock],
) -> None:
    """A dropped request that enqueued nothing is not held; a failed web request is kept at
    once; neither costs a round."""
    web, _, _, _ = sides
    web_request(web, 30, enqueue=False)
    trace_id = trace_id_with(OUTSIDE_BASELINE_RANDOMNESS, 31)
    web.pipeline.ids.next_trace_ids.append(trace_id)
    root = web.pipeline.tracer.start_span("GET boom", kind=SpanKind.SERVER)
    root.set_status(Status(StatusCode.ERROR))
    root.end()
    assert metric(web, SPANS_HELD) == {(): 0}
    assert web.relay.run_round() is False and web.channel.rounds == 0
    assert [s.name for s in exported(web, trace_id)] == ["GET boom"]


def test_redis_down_is_counted_and_spans_still_flow(
    sides: tuple[Side, Side, Bus, Clock],
) -> None:
    """With the channel failing, the failed task's spans are exported unmarked, held web
    traces expire, and each failed round is counted."""
    web, worker, bus, clock = sides
    bus.down = True
    trace_id, producer = web_request(web, 40)
    task(worker, producer, fail=True)
    worker.relay.run_round()
    [consumer] = exported(worker, trace_id)
    assert SAMPLING_UPSTREAM_RELEASED not in (consumer.attributes or {})
    clock.now += 6
    web.relay.run_round()
    assert metric(worker, ERRORS) == {(): 1} and metric(web, ERRORS) == {(): 1}
    assert metric(web, HELD)[(("outcome", "expired"),)] == 1
    assert exported(web, trace_id) == []


def test_nowhere_to_signal_turns_the_relay_off(sides: tuple[Side, Side, Bus, Clock]) -> None:
    """A channel with no Redis to use turns holding off: held traces are dropped, later
    ones are not held."""
    web, _, _, _ = sides

    def nowhere(exchange: Exchange) -> Reply:
        raise LookupError("no Redis broker or cache found")

    web.relay._channel = nowhere
    web_request(web, 50)
    web.relay.run_round()
    web_request(web, 51)
    assert metric(web, SPANS_HELD) == {(): 0}
    assert metric(web, HELD)[(("outcome", "expired"),)] == 1


def test_two_dropped_parts_of_one_trace_are_held_as_one(
    sides: tuple[Side, Side, Bus, Clock],
) -> None:
    """A second dropped local root of a held trace joins it: one signal keeps both, and the
    held-span count returns to zero."""
    web, worker, _, _ = sides
    trace_id, producer = web_request(web, 60)
    assert web_request(web, 60)[0] == trace_id  # a second request of the same trace
    assert metric(web, SPANS_HELD) == {(): 6}
    task(worker, producer, fail=True)
    worker.relay.run_round()
    web.relay.run_round()
    assert len(exported(web, trace_id)) == 6
    assert metric(web, SPANS_HELD) == {(): 0}


def test_shutdown_stops_the_relay_thread() -> None:
    """The tail processor's shutdown ends its relay's thread: none outlives the pipeline."""
    bus, clock = Bus(), Clock()

    def relay_threads() -> int:
        return sum(t.name == "CrmOtelTraceRelay" and t.is_alive() for t in threading.enumerate())

    before = relay_threads()
    side = make_side(bus, clock, 3)
    assert relay_threads() == before + 1
    side.pipeline.provider.shutdown()
    assert relay_threads() == before

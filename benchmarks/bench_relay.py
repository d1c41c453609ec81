"""Cost of letting a failed task keep its web request (the relay), against the tail
processor without it, in the same run.

    python benchmarks/bench_relay.py [--traces N] [--redis URL]

Web side: requests of 10 spans (a server root, 8 queries, one `apply_async` producer),
production policy (ratio 0.1), so 90% are dropped and held. CPU is `time.process_time()`
(all threads: the relay's rounds count) including a final flush, with the relay talking
to a real Redis (`--redis`, default `redis://127.0.0.1:6379/3`) under one unique key
prefix. Memory: tracemalloc's traced bytes per held span while the relay holds
`max_held_spans`. Redis: round trips per second of load.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import tracemalloc
import uuid

import redis
from bench_sampling import NullExporter, SeededIds, db_span
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Tracer, set_span_in_context

from crm_otel._relay import RedisChannel
from sampling import (
    ConsistentBaselineSampler,
    Exchange,
    Reply,
    SamplingPolicy,
    TailSamplingProcessor,
    TraceRelay,
)

SPANS_PER_TRACE = 10


class CountingChannel:
    """The Redis channel, counting its round trips."""

    def __init__(self, url: str, prefix: str) -> None:
        self.inner = RedisChannel(url, 30_000, prefix)
        self.rounds = 0

    def __call__(self, exchange: Exchange) -> Reply:
        self.rounds += 1
        return self.inner(exchange)


def make_requests(tracer: Tracer, traces: int) -> None:
    """`traces` ok requests that each enqueue one task."""
    for i in range(traces):
        root = tracer.start_span(
            "GET api/v1/leads/<int:pk>/sync/",
            kind=SpanKind.SERVER,
            attributes={"http.method": "GET", "http.status_code": 202, "crm.user.id": str(i)},
        )
        context = set_span_in_context(root)
        for _ in range(SPANS_PER_TRACE - 2):
            db_span(tracer, context)
        tracer.start_span(
            "apply_async/leads.tasks.sync_lead",
            context=context,
            kind=SpanKind.PRODUCER,
            attributes={"celery.action": "apply_async", "messaging.message.id": str(i)},
        ).end()
        root.end()


def pipeline(
    policy: SamplingPolicy, relay: TraceRelay | None
) -> tuple[TracerProvider, TailSamplingProcessor]:
    provider = TracerProvider(
        sampler=ConsistentBaselineSampler.from_policy(policy),
        id_generator=SeededIds(1),
        shutdown_on_exit=False,
    )
    processor = TailSamplingProcessor(NullExporter(), policy, relay=relay)
    provider.add_span_processor(processor)
    return provider, processor


def cpu(traces: int, url: str | None, collect: bool = True) -> tuple[float, int, float]:
    """CPU microseconds per span, Redis round trips, and seconds of the run (default caps;
    `collect=False` turns the cyclic GC off, to tell the relay's own work from the GC's
    scanning of the spans it holds)."""
    policy = SamplingPolicy(ratio=0.1, max_trace_age_ms=3_600_000.0)
    channel = CountingChannel(url, f"crm-otel-bench:{uuid.uuid4().hex}:") if url else None
    relay = (
        TraceRelay(channel, hold_ms=30_000, max_held_spans=policy.max_held_spans)
        if channel
        else None
    )
    provider, _ = pipeline(policy, relay)
    tracer = provider.get_tracer("bench")
    make_requests(tracer, 200)  # warm up
    provider.force_flush()
    gc.collect()
    if not collect:
        gc.disable()
    start, wall = time.process_time(), time.monotonic()
    rounds_before = channel.rounds if channel else 0
    make_requests(tracer, traces)
    time.sleep(1.0)  # let the relay poll with everything held, as it would under load
    provider.force_flush()
    elapsed, wall = time.process_time() - start, time.monotonic() - wall
    gc.enable()
    rounds = (channel.rounds - rounds_before) if channel else 0
    provider.shutdown()
    if channel is not None:
        client = redis.Redis.from_url(url)  # type: ignore[arg-type]
        client.delete(*(channel.inner._keep_key, channel.inner._released_key))
    return elapsed / (traces * SPANS_PER_TRACE) * 1e6, rounds, wall


def memory_per_held_span(cap: int) -> float:
    """Traced bytes per span held by the relay at its cap (twice the cap passes through)."""

    def nowhere(exchange: Exchange) -> Reply:
        return Reply()

    policy = SamplingPolicy(ratio=0.0, max_held_spans=cap, max_trace_age_ms=3_600_000.0)
    relay = TraceRelay(nowhere, hold_ms=3_600_000, max_held_spans=cap, interval_ms=3_600_000)
    provider, _ = pipeline(policy, relay)
    tracer = provider.get_tracer("bench")
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    make_requests(tracer, 2 * cap // SPANS_PER_TRACE)
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    held = relay.held_spans
    assert 0 < held <= cap, held
    return used / held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/3")
    args = parser.parse_args()
    figures: dict[str, list[float]] = {}
    for _ in range(args.rounds):  # interleaved, medians: the machine's noise hits all
        for collect in (True, False):
            gc_label = "" if collect else ", GC off"
            figures.setdefault(f"tail processor alone{gc_label}", []).append(
                cpu(args.traces, None, collect)[0]
            )
            figure, rounds, wall = cpu(args.traces, args.redis, collect)
            figures.setdefault(f"tail processor + relay{gc_label}", []).append(figure)
    medians = {name: statistics.median(values) for name, values in figures.items()}
    for gc_label in ("", ", GC off"):
        without = medians[f"tail processor alone{gc_label}"]
        with_relay = medians[f"tail processor + relay{gc_label}"]
        print(f"tail processor alone{gc_label}:   {without:6.2f} us/span")
        print(
            f"tail processor + relay{gc_label}: {with_relay:6.2f} us/span "
            f"({with_relay / without:.2f}x)"
        )
    print(f"Redis round trips:        {rounds} for {args.traces} requests in {wall:.1f} s")
    print(f"memory per held span:     {memory_per_held_span(10_000):6.0f} bytes")


if __name__ == "__main__":
    main()

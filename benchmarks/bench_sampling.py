"""Per-span CPU and memory of crm-otel's tail sampling, against baselines measured in the same run.

    python benchmarks/bench_sampling.py [--traces N] [--rounds R]

Each trace is 10 spans (a server root and 9 client children, with attributes like a
Django request and its queries). Configurations, all on the SDK's TracerProvider:
  (a) default sampler, a processor that does nothing (the cost of making spans);
  (b) default sampler, `BatchSpanProcessor` exporting 100% to a null exporter;
  (c) crm-otel's head sampler + tail processor, production policy (ratio 0.1), same
      null exporter;
  (d) (b) and (c) with an exporter that encodes OTLP protobuf (what an OTLP exporter
      does before the network), total CPU.
CPU is `time.process_time()` (every thread of the process, so worker threads count),
including a final `force_flush`. Memory: tracemalloc's traced memory while the tail
processor holds `max_buffered_spans` spans, per held span.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
import tracemalloc
from collections.abc import Callable, Sequence

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Tracer,
    set_span_in_context,
)

from sampling import (
    ConsistentBaselineSampler,
    SamplingPolicy,
    TailSamplingProcessor,
)

SPANS_PER_TRACE = 10
TARGETS = {
    "(c)/(b)": 1.0,
    "(c)-(a) us/span": 3.0,
    "encode-included (c)/(b)": 0.6,
    "bytes/span at cap": 3 * 1024,
}


class NullExporter(SpanExporter):
    """Accepts every batch and does nothing with it."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class EncodingExporter(SpanExporter):
    """Encodes every batch to OTLP protobuf bytes, as an OTLP exporter does, then drops it."""

    def __init__(self) -> None:
        self.bytes = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.bytes += len(encode_spans(spans).SerializeToString())
        return SpanExportResult.SUCCESS


class NullProcessor(SpanProcessor):
    """Receives every span and does nothing."""


class SeededIds(IdGenerator):
    """Reproducible random ids."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def generate_span_id(self) -> int:
        return self._random.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self._random.getrandbits(128) or 1


def make_traces(tracer: Tracer, traces: int) -> None:
    """`traces` ok, fast traces of `SPANS_PER_TRACE` spans."""
    for i in range(traces):
        root = tracer.start_span(
            "GET api/v1/leads/<int:pk>/",
            kind=SpanKind.SERVER,
            attributes={
                "http.method": "GET",
                "http.route": "api/v1/leads/<int:pk>/",
                "http.status_code": 200,
                "crm.user.id": str(i % 50),
            },
        )
        context = set_span_in_context(root)
        for _ in range(SPANS_PER_TRACE - 1):
            db_span(tracer, context)
        root.end()


def db_span(tracer: Tracer, context: Context) -> None:
    """One ended query span under `context`, as the psycopg2 instrumentation makes them."""
    tracer.start_span(
        "SELECT",
        context=context,
        kind=SpanKind.CLIENT,
        attributes={
            "db.system": "postgresql",
            "db.name": "crm",
            "db.statement": "SELECT id, name FROM leads_lead WHERE id = %s",
        },
    ).end()


Setup = Callable[[], tuple[TracerProvider, SpanExporter | None]]


def null_setup() -> tuple[TracerProvider, SpanExporter | None]:
    provider = TracerProvider(id_generator=SeededIds(1), shutdown_on_exit=False)
    provider.add_span_processor(NullProcessor())
    return provider, None


def batch_setup(exporter_type: type[SpanExporter]) -> Setup:
    def setup() -> tuple[TracerProvider, SpanExporter | None]:
        exporter = exporter_type()
        provider = TracerProvider(id_generator=SeededIds(1), shutdown_on_exit=False)
        provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=1 << 20))
        return provider, exporter

    return setup


def tail_setup(exporter_type: type[SpanExporter], policy: SamplingPolicy | None = None) -> Setup:
    def setup() -> tuple[TracerProvider, SpanExporter | None]:
        exporter = exporter_type()
        chosen = policy or SamplingPolicy(ratio=0.1)
        provider = TracerProvider(
            sampler=ConsistentBaselineSampler.from_policy(chosen),
            id_generator=SeededIds(1),
            shutdown_on_exit=False,
        )
        provider.add_span_processor(TailSamplingProcessor(exporter, chosen))
        return provider, exporter

    return setup


def cpu_per_span(setup: Setup, traces: int) -> float:
    """CPU microseconds per span, all threads, including the final flush."""
    provider, _ = setup()
    tracer = provider.get_tracer("bench")
    make_traces(tracer, 200)  # warm up
    provider.force_flush()
    gc.collect()
    start = time.process_time()
    make_traces(tracer, traces)
    provider.force_flush()
    elapsed = time.process_time() - start
    provider.shutdown()
    return elapsed / (traces * SPANS_PER_TRACE) * 1e6


def memory_per_span(cap: int) -> tuple[float, int]:
    """Traced bytes per held span while the tail processor holds `cap` spans.

    The spans' parents are unsampled local contexts that never end, so nothing is
    decided until the buffer cap forces it; twice the cap passes through, so the figure
    is the steady state at the cap (held spans, their trace records, the decision cache).
    """
    policy = SamplingPolicy(ratio=0.0, max_buffered_spans=cap, max_trace_age_ms=3_600_000.0)
    provider = TracerProvider(
        sampler=ConsistentBaselineSampler.from_policy(policy),
        id_generator=SeededIds(2),
        shutdown_on_exit=False,
    )
    processor = TailSamplingProcessor(NullExporter(), policy)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")
    ids = SeededIds(3)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(2 * cap // (SPANS_PER_TRACE - 1) + 1):
        parent = SpanContext(ids.generate_trace_id(), ids.generate_span_id(), is_remote=False)
        context = set_span_in_context(NonRecordingSpan(parent))
        for _ in range(SPANS_PER_TRACE - 1):
            db_span(tracer, context)
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    held = processor._buffer.buffered
    provider.shutdown()
    return used / held, held


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cap", type=int, default=20_000)
    args = parser.parse_args()

    configs: dict[str, Setup] = {
        "a": null_setup,
        "b": batch_setup(NullExporter),
        "c": tail_setup(NullExporter),
        "b_enc": batch_setup(EncodingExporter),
        "c_enc": tail_setup(EncodingExporter),
    }
    runs: dict[str, list[float]] = {name: [] for name in configs}
    # Interleaved rounds, so drift in machine load hits every configuration alike.
    for _ in range(args.rounds):
        for name, setup in configs.items():
            runs[name].append(cpu_per_span(setup, args.traces))
    cpu = {name: statistics.median(values) for name, values in runs.items()}
    bytes_per_span, held = memory_per_span(args.cap)

    print(f"{args.traces} traces x {SPANS_PER_TRACE} spans, median of {args.rounds} rounds")
    labels = {
        "a": "(a) null processor",
        "b": "(b) BatchSpanProcessor, 100%, null exporter",
        "c": "(c) crm-otel sampler + tail, ratio 0.1, null exporter",
        "b_enc": "(d) BatchSpanProcessor, 100%, OTLP encoding",
        "c_enc": "(d) crm-otel, ratio 0.1, OTLP encoding",
    }
    for name, label in labels.items():
        print(f"  {label:<58} {cpu[name]:7.2f} us/span CPU")
    results = {
        "(c)/(b)": cpu["c"] / cpu["b"],
        "(c)-(a) us/span": cpu["c"] - cpu["a"],
        "encode-included (c)/(b)": cpu["c_enc"] / cpu["b_enc"],
        "bytes/span at cap": bytes_per_span,
    }
    print(f"  memory: {held} spans held at the cap")
    failed = 0
    for name, value in results.items():
        target = TARGETS[name]
        met = value <= target
        failed += not met
        print(f"  {name:<26} {value:10.2f}   target <= {target:g}   {'met' if met else 'NOT MET'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

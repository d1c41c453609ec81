"""Cost of exemplars: microseconds per traced request with exemplars on vs off (same run,
interleaved rounds), and scrape rendering with and without them.

    .venv/bin/python benchmarks/bench_exemplars.py [--requests 20000] [--rounds 5]

In process, no server: each request is a server span under the real head sampler and
tail processor (10 % baseline, a no-op exporter) recording `http_request_duration_ms`
and three `db_query_duration_ms` measurements, as a request with three queries does.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from crm_otel.metrics import _build_runtime, _runtime
from crm_otel.metrics._exposition import render, render_openmetrics
from crm_otel.metrics._instruments import views
from crm_otel.metrics._settings import MetricsSettings
from sampling import ConsistentBaselineSampler, SamplingPolicy, TailSamplingProcessor

LABELS = {"method": "GET", "path": "/api/v1/leads/<int:pk>/", "status": "200"}


class _NoExport(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _arm(exemplars: bool) -> tuple[Any, _runtime.Runtime, TracerProvider]:
    settings = MetricsSettings.from_env(
        {
            "CRM_OTEL_METRICS_DIR": tempfile.mkdtemp(),
            "CRM_OTEL_METRICS_EXEMPLARS": str(exemplars).lower(),
        }
    )
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader], views=views())
    runtime = _build_runtime(settings, meters, reader)
    policy = SamplingPolicy(ratio=0.1, slow_threshold_ms=2000.0)
    listener = None
    if runtime.exemplars is not None:
        runtime.exemplars.listening = True
        listener = runtime.exemplars.decided
    processor = TailSamplingProcessor(
        _NoExport(), policy, meter_provider=MeterProvider(), on_decision=listener
    )
    tracer_provider = TracerProvider(sampler=ConsistentBaselineSampler.from_policy(policy))
    tracer_provider.add_span_processor(processor)
    return tracer_provider.get_tracer("bench"), runtime, tracer_provider


def _per_request_us(tracer: Any, runtime: _runtime.Runtime, requests: int) -> float:
    http = runtime.instruments.http_request_duration
    db = runtime.instruments.db_query_duration
    started = time.perf_counter()
    for index in range(requests):
        with tracer.start_as_current_span("GET api/v1/leads/<int:pk>/"):
            for query in range(3):
                db.record(0.4 + query, {"query_type": "select"})
            http.record(3.0 + index % 40, LABELS)
    return (time.perf_counter() - started) / requests * 1e6


def _render_ms(runtime: _runtime.Runtime, repeats: int = 50) -> tuple[float, float, int]:
    result = runtime.recorder.collect()
    timings = {}
    for name, call in (
        ("text", lambda: render(result.families)),
        ("openmetrics", lambda: render_openmetrics(result.families, result.exemplars)),
    ):
        started = time.perf_counter()
        for _ in range(repeats):
            call()
        timings[name] = (time.perf_counter() - started) / repeats * 1000
    return timings["text"], timings["openmetrics"], len(result.exemplars)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5, help="off/on pairs, interleaved")
    args = parser.parse_args()
    off_arm, on_arm = _arm(False), _arm(True)
    off: list[float] = []
    on: list[float] = []
    for round_ in range(args.rounds):
        # Alternate which arm goes first, so a drift in the machine's load favours neither.
        arms = [(off, off_arm), (on, on_arm)]
        for timings, (tracer, runtime, _) in arms if round_ % 2 == 0 else arms[::-1]:
            timings.append(_per_request_us(tracer, runtime, args.requests))
        print(f"round {round_ + 1}: exemplars off {off[-1]:.1f} us, on {on[-1]:.1f} us")
    for name, pick in (("median", statistics.median), ("best", min)):
        a, b = pick(off), pick(on)
        print(
            f"per traced request (span + 4 measurements), {name} of {args.rounds}: off {a:.1f} "
            f"us, on {b:.1f} us: exemplars cost {b - a:.1f} us per request, ratio {b / a:.3f}"
        )
    text_ms, openmetrics_ms, held = _render_ms(on_arm[1])
    print(
        f"rendering a scrape: Prometheus text {text_ms:.2f} ms, OpenMetrics with {held} "
        f"exemplars {openmetrics_ms:.2f} ms"
    )
    for _, runtime, tracer_provider in (off_arm, on_arm):
        tracer_provider.shutdown()
        runtime.recorder.shutdown()


if __name__ == "__main__":
    main()

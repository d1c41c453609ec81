"""Cost of crm-otel's metrics: requests per second of the example CRM with metrics on vs
off (same run, interleaved rounds), and scrape latency with 4 gunicorn workers.

    .venv/bin/python benchmarks/bench_metrics.py [--seconds 5] [--rounds 3]

Needs PostgreSQL and Redis on 127.0.0.1 (uses its own database `crm_otel_metrics_bench`
and Redis database 14). Tracing export is off in both arms (OTEL_TRACES_EXPORTER=none) so
the ratio isolates metric recording; load comes from a bounded loop of HTTP requests.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.blackbox._harness import EXAMPLE, crm_env, get, start_web

DATABASE = "crm_otel_metrics_bench"
REDIS_URL = "redis://127.0.0.1:6379/14"
PATHS = ("/api/v1/leads/", "/api/v1/leads/1/", "/api/v1/search/?q=a", "/api/v1/leads/1/score/")


def _env(**overrides: str) -> dict[str, str]:
    return crm_env(
        None,
        OTEL_TRACES_EXPORTER="none",
        REDIS_URL=REDIS_URL,
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{DATABASE}",
        **overrides,
    )


def _prepare() -> None:
    import psycopg2
    import redis

    connection = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{DATABASE}"')
        cursor.execute(f'CREATE DATABASE "{DATABASE}"')
    connection.close()
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=EXAMPLE, env=_env(), check=True
    )
    redis.Redis.from_url(REDIS_URL).flushdb()


def _load(url: str, seconds: float, threads: int = 4) -> float:
    """Requests per second over `seconds` from `threads` looping clients."""
    done = [0] * threads
    deadline = time.monotonic() + seconds

    def loop(index: int) -> None:
        n = 0
        while time.monotonic() < deadline:
            path = PATHS[n % len(PATHS)]
            try:
                with urllib.request.urlopen(url + path, timeout=10) as response:
                    response.read()
            except urllib.error.HTTPError as error:
                error.read()
            n += 1
        done[index] = n

    started = time.monotonic()
    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(done) / (time.monotonic() - started)


def _throughput(enabled: bool, seconds: float) -> float:
    web = start_web(
        _env(CRM_OTEL_METRICS_ENABLED=str(enabled).lower()), server="gunicorn", workers=2
    )
    try:
        _load(web.url, 1.0)  # warm-up: imports, connections
        return _load(web.url, seconds)
    finally:
        web.stop()
        web._log.close()


def _scrape_latency(scrapes: int = 50) -> tuple[float, float, int]:
    web = start_web(_env(), server="gunicorn", workers=4)
    try:
        _load(web.url, 2.0)
        time.sleep(1.0)
        timings = []
        size = 0
        for _ in range(scrapes):
            started = time.perf_counter()
            status, _, body = get(web.url + "/metrics")
            timings.append((time.perf_counter() - started) * 1000)
            assert status == 200
            size = len(body)
        timings.sort()
        return statistics.median(timings), timings[int(len(timings) * 0.95) - 1], size
    finally:
        web.stop()
        web._log.close()


def _recording_cost(calls: int = 50_000) -> tuple[float, float]:
    """Microseconds per request through MetricsMiddleware, and per request without it."""
    import tempfile
    from types import SimpleNamespace

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from crm_otel.metrics import MetricsMiddleware, _build_runtime, _runtime
    from crm_otel.metrics._instruments import views
    from crm_otel.metrics._settings import MetricsSettings

    settings = MetricsSettings.from_env({"CRM_OTEL_METRICS_DIR": tempfile.mkdtemp()})
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], views=views())
    runtime = _build_runtime(settings, provider, reader)
    _runtime.install(runtime)
    response = SimpleNamespace(status_code=200)
    match = SimpleNamespace(route="api/v1/leads/<int:pk>/")
    request = SimpleNamespace(path_info="/api/v1/leads/7/", method="GET", resolver_match=match)

    def view(_: object) -> object:
        return response

    middleware = MetricsMiddleware(view)
    timings = {}
    for name, call in (("bare", view), ("middleware", middleware)):
        started = time.perf_counter()
        for _ in range(calls):
            call(request)
        timings[name] = (time.perf_counter() - started) / calls * 1e6
    runtime.recorder.shutdown()
    _runtime.install(None)
    return timings["middleware"], timings["bare"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="load per round")
    parser.add_argument("--rounds", type=int, default=3, help="off/on pairs, interleaved")
    args = parser.parse_args()
    with_metrics, bare = _recording_cost()
    print(
        f"request recording in-process: {with_metrics - bare:.1f} us per request "
        f"(2 SDK calls for a non-5xx response; middleware {with_metrics:.1f} us, "
        f"bare view {bare:.2f} us)"
    )
    _prepare()
    off, on = [], []
    for round_ in range(args.rounds):
        off.append(_throughput(False, args.seconds))
        on.append(_throughput(True, args.seconds))
        print(f"round {round_ + 1}: metrics off {off[-1]:.0f} req/s, on {on[-1]:.0f} req/s")
    median_off, median_on = statistics.median(off), statistics.median(on)
    print(
        f"gunicorn -w 2, median of {args.rounds} rounds: off {median_off:.0f} req/s, "
        f"on {median_on:.0f} req/s, ratio on/off {median_on / median_off:.3f}"
    )
    p50, p95, size = _scrape_latency()
    print(
        f"scrape with gunicorn -w 4 (5 processes' files merged): p50 {p50:.1f} ms, "
        f"p95 {p95:.1f} ms, body {size} bytes"
    )


if __name__ == "__main__":
    main()

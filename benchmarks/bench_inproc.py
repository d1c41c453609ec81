"""CPU per request in one process: the example CRM's WSGI application called in a loop,
uninstrumented vs plain OpenTelemetry vs crm-otel (and crm-otel with one part off at a
time), configurations interleaved in one run.

    .venv/bin/python benchmarks/bench_inproc.py [--requests 1500] [--rounds 3]
    .venv/bin/python benchmarks/bench_inproc.py --profile crm-otel [--requests 4000]

Wall-clock throughput on a shared machine mostly measures the neighbours; CPU time does
not. Each configuration runs in a fresh process launched the way a server is
(`opentelemetry-instrument python ...`), with real PostgreSQL and Redis, and calls the
WSGI application directly (no HTTP server), so the only difference between
configurations is what instrumentation adds. Reported per configuration (median over
rounds): CPU µs per request of the whole process (background export threads included,
after a final flush) and of the request thread alone, and the difference to
uninstrumented.

`--baseline-tree PATH` adds "crm-otel @ baseline": crm-otel from another checkout (a
worktree of main), interleaved with this tree's, for a before/after in one run.

`--profile NAME` runs one configuration under `py-spy` and splits its CPU per request
by component: each sample goes to the innermost frame of a component or of the app, so a
middleware is not billed for the view it wraps, nor a database wrapper for the query.

Every configuration runs from `.venv-bench` (see `bench_requests.py`) with this tree's
`crm_otel`, `sampling` and `semconv` first on the path, so edits are measured without
rebuilding the wheel. PostgreSQL database `crm_otel_bench$CRM_OTEL_TEST_SUFFIX`, Redis
database `$CRM_OTEL_TEST_REDIS_DB` (13 when unset).
"""

from __future__ import annotations

import argparse
import json
import linecache
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_requests import (  # noqa: E402
    CONFIGS,
    PATHS,
    Config,
    Sink,
    _bench_venv,
    base_env,
    prepare,
)

from tests.blackbox._harness import EXAMPLE  # noqa: E402

WARMUP = 300
TREE_VARIABLE = "_CRM_OTEL_BENCH_TREE"
PROFILE_VARIABLE = "_CRM_OTEL_BENCH_PY_SPY_OUT"

COMPONENTS: list[tuple[str, str]] = [
    # (label, regular expression on a frame's file); the innermost frame of a component
    # (or of the app) takes the sample, so a middleware is not billed for what it wraps.
    ("export: BatchSpanProcessor/OTLP encoding+HTTP", r"/opentelemetry/(exporter|proto)/"),
    ("contrib: Django middleware (+wsgi/util-http)", r"/instrumentation/(django|wsgi)/|util/http"),
    ("contrib: dbapi/psycopg2 wrappers", r"/instrumentation/(dbapi|psycopg2?)/"),
    ("contrib: redis wrapper", r"/instrumentation/redis/"),
    (
        "OTel SDK/API: spans, context, attributes",
        r"/opentelemetry/(sdk/trace|trace|context|"
        r"attributes|util|semconv|instrumentation|propagators|baggage|sdk/util)/?",
    ),
    ("OTel SDK: metric recording", r"/opentelemetry/(sdk/)?metrics/"),
    ("crm-otel: BusinessMetricsProcessor", r"crm_otel/metrics/_spans\.py"),
    ("crm-otel: tenant processor/exporter/usage", r"crm_otel/metrics/_tenant"),
    ("crm-otel: TaskValuesSpanProcessor", r"crm_otel/logs/_tasks\.py"),
    ("crm-otel: Redacting/WorkflowLog processors", r"crm_otel/logs/_(processors|redact)\.py"),
    ("crm-otel: tail sampler + relay", r"sampling/_(tail|buffer|relay|policy)\.py|crm_otel/_relay"),
    ("crm-otel: head sampler", r"sampling/_(head|threshold)\.py"),
    ("crm-otel: metrics middleware + db hooks", r"crm_otel/metrics/_(django|pool|runtime)\.py"),
    ("crm-otel: redis hooks + cache scope", r"crm_otel/metrics/_(redis|cache_scope)\.py"),
    ("crm-otel: exemplars", r"crm_otel/metrics/_exemplars\.py"),
    ("crm-otel: metrics recorder thread", r"crm_otel/metrics/_(recorder|store|snapshot)\.py"),
    ("crm-otel: request context middleware", r"crm_otel/(_django|_context|_identity|_usage)\.py"),
    ("crm-otel: access log + JSON log lines", r"crm_otel/logs/"),
    ("crm-otel: in-trace-only redis tracer", r"crm_otel/_redis\.py"),
    ("crm-otel: other", r"crm_otel/|/semconv/|/sampling/"),
]
APP = r"/(django|psycopg2|redis|rest_framework|asgiref)/|examples/crm/|bench_inproc\.py"
"""Frames of the work an uninstrumented request does too."""
DELEGATING = re.compile(r"\b(query_method|wrapped|func|connect_method|get_response)\(")
"""A wrapper's line that calls what it wraps: time there is the wrapped call's."""
IDLE = re.compile(r"^(Condition\.wait|Event\.wait|wait|select|_recv_into) \(")


def _env(bin_dir: Path, sink: Sink) -> dict[str, str]:
    # bench_requests' environment, plus the paths a bare `python` needs to find the CRM.
    env = base_env(bin_dir, sink)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(EXAMPLE)])
    return env


def child(requests: int, out: str) -> None:
    """Inside the launched process: call the WSGI app `requests` times and write the CPU."""
    import io
    from wsgiref.util import setup_testing_defaults

    os.chdir(EXAMPLE)
    from crm.wsgi import application

    def call(path: str) -> None:
        path, _, query = path.partition("?")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_USER_AGENT": "bench_inproc",
            "wsgi.input": io.BytesIO(b""),
        }
        setup_testing_defaults(environ)
        statuses: list[str] = []
        body = application(environ, lambda status, headers, *_: statuses.append(status))
        for _chunk in body:
            pass
        if hasattr(body, "close"):
            body.close()
        if not statuses[0].startswith("200"):
            raise RuntimeError(f"{path}: {statuses[0]}")

    for i in range(WARMUP):
        call(PATHS[i % len(PATHS)])
    _flush()
    spy = _attach_py_spy()
    cpu0, thread0 = time.process_time(), time.thread_time()
    for i in range(requests):
        call(PATHS[i % len(PATHS)])
    thread1 = time.thread_time()
    _flush()
    cpu1 = time.process_time()
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(60)
    result = {
        "cpu_us": (cpu1 - cpu0) / requests * 1e6,
        "thread_us": (thread1 - thread0) / requests * 1e6,
    }
    Path(out).write_text(json.dumps(result))


def _attach_py_spy() -> subprocess.Popen[bytes] | None:
    """py-spy on this process for the measured loop, when the parent asked for a profile."""
    out = os.environ.get(PROFILE_VARIABLE)
    if not out:
        return None
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    spy = subprocess.Popen(
        [
            py_spy,
            "record",
            "--full-filenames",
            "-r",
            "200",
            "-f",
            "raw",
            "-o",
            out,
            "--pid",
            str(os.getpid()),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # attached before the loop starts
    return spy


def _flush() -> None:
    """Spans of the measured requests are exported (and their CPU counted) before the end."""
    from opentelemetry import trace

    flush = getattr(trace.get_tracer_provider(), "force_flush", None)
    if flush is not None:
        flush()


def _command(bin_dir: Path, config: Config, requests: int, out: str) -> list[str]:
    args = [str(bin_dir / "python"), __file__, "--child", out, "--requests", str(requests)]
    return [str(bin_dir / "opentelemetry-instrument"), *args] if config.instrument else args


def measure(bin_dir: Path, env: dict[str, str], config: Config, requests: int) -> dict[str, Any]:
    tree = config.env.get(TREE_VARIABLE)
    if tree:  # crm-otel of another checkout (e.g. a worktree of main), for before/after
        env = {**env, "PYTHONPATH": os.pathsep.join([tree, str(EXAMPLE)])}
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(
            _command(bin_dir, config, requests, out.name),
            env={**env, **config.env},
            stdout=subprocess.DEVNULL,
            check=True,
        )
        return dict(json.loads(Path(out.name).read_text()))


def profile(bin_dir: Path, env: dict[str, str], config: Config, requests: int, raw: str) -> None:
    """One configuration under py-spy: CPU µs per request by component."""
    cpu = measure(bin_dir, env, config, requests)["cpu_us"]
    measure(bin_dir, {**env, PROFILE_VARIABLE: raw}, config, requests)
    lines = Path(raw).read_text().splitlines()
    patterns = [(label, re.compile(rx)) for label, rx in COMPONENTS]
    app = re.compile(APP)
    frame_re = re.compile(r"^(.*) \((.*):(\d+)\)$")
    counts: dict[str, int] = defaultdict(int)
    total = 0
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        frames = [m.groups() for m in map(frame_re.match, stack.split(";")) if m]
        if not frames or IDLE.match(f"{frames[-1][0]} ("):
            continue
        count = int(count_text)
        total += count
        counts[_component(frames, patterns, app)] += count
    print(f"{config.name}: {cpu:.0f} µs CPU per request (unprofiled run); py-spy {total} samples")
    print("| component | share | µs / request |")
    print("|---|---|---|")
    for label in [*(label for label, _ in COMPONENTS), "app and Django", "other"]:
        share = counts[label] / total if total else 0.0
        print(f"| {label} | {share:.1%} | {share * cpu:.0f} |")


def _component(
    frames: list[tuple[str, ...]], patterns: list[tuple[str, re.Pattern[str]]], app: re.Pattern[str]
) -> str:
    if any(patterns[0][1].search(path) for _, path, _ in frames):
        return patterns[0][0]  # the export thread, whatever it calls
    _, leaf_path, leaf_line = frames[-1]
    if DELEGATING.search(linecache.getline(leaf_path, int(leaf_line))):
        return "app and Django"
    for _, path, _ in reversed(frames):
        if app.search(path):
            return "app and Django"
        for label, pattern in patterns:
            if pattern.search(path):
                return label
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1500, help="measured requests per run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--only", default="", help="configuration names separated by ;")
    parser.add_argument("--profile", default="", help="profile this configuration by component")
    parser.add_argument(
        "--raw",
        default="/tmp/bench_inproc_py_spy.txt",
        help="where --profile keeps py-spy's output",
    )
    parser.add_argument(
        "--baseline-tree",
        default="",
        help="also run crm-otel from this checkout (configuration 'crm-otel @ baseline')",
    )
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.requests, args.child)
        return
    wanted = {n.strip() for n in args.only.split(";") if n.strip()}
    if args.profile:
        wanted = {args.profile}
    all_configs = list(CONFIGS)
    if args.baseline_tree:
        crm_otel = next(c for c in CONFIGS if c.name == "crm-otel")
        baseline = {**crm_otel.env, TREE_VARIABLE: str(Path(args.baseline_tree).resolve())}
        all_configs.insert(2, Config("crm-otel @ baseline", True, baseline))
    configs = [c for c in all_configs if not wanted or c.name in wanted]
    bin_dir = _bench_venv()
    sink = Sink()
    env = _env(bin_dir, sink)
    prepare(bin_dir, env)
    if args.profile:
        profile(bin_dir, env, configs[0], args.requests, args.raw)
        return
    results: dict[str, list[dict[str, float]]] = {c.name: [] for c in configs}
    for round_ in range(args.rounds):
        # Every other round in reverse: a load that drifts during a round favours no one.
        for config in configs if round_ % 2 == 0 else configs[::-1]:
            result = measure(bin_dir, env, config, args.requests)
            results[config.name].append(result)
            print(
                f"round {round_ + 1} {config.name:<30} cpu {result['cpu_us']:6.0f} µs/req  "
                f"request thread {result['thread_us']:6.0f} µs/req",
                flush=True,
            )
    median = {
        name: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        for name, runs in results.items()
    }
    base = median.get("uninstrumented")
    print()
    print("| configuration | CPU µs / req | request thread µs / req | added vs uninstrumented |")
    print("|---|---|---|---|")
    for name, m in median.items():
        added = f"{m['cpu_us'] - base['cpu_us']:+.0f}" if base else "-"
        print(f"| {name} | {m['cpu_us']:.0f} | {m['thread_us']:.0f} | {added} |")


if __name__ == "__main__":
    main()

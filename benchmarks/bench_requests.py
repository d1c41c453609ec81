"""Cost per request: the example CRM under `gunicorn -w 2` on PostgreSQL and Redis, loaded
by `wrk`, uninstrumented vs plain OpenTelemetry vs crm-otel (and crm-otel with one part
off at a time), configurations interleaved in one run.

    .venv/bin/python benchmarks/bench_requests.py [--seconds 8] [--rounds 3]

Plain OpenTelemetry is `opentelemetry-distro` (SDK, the Django, psycopg2, Redis and
Celery instrumentations, a BatchSpanProcessor exporting every span over OTLP/HTTP); it
runs from a venv of its own (`.venv-bench`, made on first use from the built wheel plus
`opentelemetry-distro` of the same release), which also serves every other
configuration so that all run the same packages. Spans go to a local OTLP sink that
answers 200 without decoding. Needs `wrk` (Debian package) and PostgreSQL and Redis on
127.0.0.1 (database `crm_otel_bench$CRM_OTEL_TEST_SUFFIX`, Redis database
`$CRM_OTEL_TEST_REDIS_DB`, 13 when unset).

Reported per configuration (median over rounds): req/s with 8 connections and its ratio
to uninstrumented and to plain OpenTelemetry, p50 and p99 latency at one connection,
and CPU seconds per 1,000 requests of the gunicorn workers.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.blackbox._harness import EXAMPLE, free_port, get  # noqa: E402

DATABASE = f"crm_otel_bench{os.environ.get('CRM_OTEL_TEST_SUFFIX', '')}"
REDIS_URL = f"redis://127.0.0.1:6379/{os.environ.get('CRM_OTEL_TEST_REDIS_DB', '13')}"
"""Per engineer on a shared machine, as for the tests."""
VENV = ROOT / ".venv-bench"
PATHS = ("/api/v1/leads/", "/api/v1/leads/1/score/", "/api/v1/search/?q=a")
"""One SELECT; a Redis GET (cached score); a Redis GET (cached search)."""
OTEL_PINS = "opentelemetry-distro==0.66b1"

WRK_SCRIPT = (
    "local paths = {" + ", ".join(f'"{p}"' for p in PATHS) + "}\n"
    "local i = 0\n"
    "request = function()\n"
    "  i = i + 1\n"
    '  return wrk.format("GET", paths[(i % #paths) + 1])\n'
    "end\n"
)


@dataclass(frozen=True)
class Config:
    """One way of running the CRM."""

    name: str
    instrument: bool
    env: dict[str, str] = field(default_factory=dict)


CRM_OTEL = {"OTEL_PYTHON_DISTRO": "crm_otel", "OTEL_PYTHON_CONFIGURATOR": "crm_otel"}
CONFIGS = [
    Config("uninstrumented", False),
    Config(
        "plain OpenTelemetry",
        True,
        {
            "OTEL_PYTHON_DISTRO": "distro",
            "OTEL_PYTHON_CONFIGURATOR": "configurator",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        },
    ),
    Config("crm-otel", True, CRM_OTEL),
    Config("crm-otel, no trace export", True, {**CRM_OTEL, "OTEL_TRACES_EXPORTER": "none"}),
    Config("crm-otel, tail sampling off", True, {**CRM_OTEL, "CRM_OTEL_TAIL_SAMPLING": "false"}),
    Config("crm-otel, metrics off", True, {**CRM_OTEL, "CRM_OTEL_METRICS_ENABLED": "false"}),
    Config("crm-otel, JSON logs off", True, {**CRM_OTEL, "CRM_OTEL_LOG_JSON": "false"}),
    Config("crm-otel, logs bridge on", True, {**CRM_OTEL, "OTEL_LOGS_EXPORTER": "otlp"}),
    Config("crm-otel, exemplars off", True, {**CRM_OTEL, "CRM_OTEL_METRICS_EXEMPLARS": "false"}),
    Config("crm-otel, task hold off", True, {**CRM_OTEL, "CRM_OTEL_SAMPLING_HOLD_MS": "0"}),
]


class Sink:
    """An OTLP/HTTP endpoint that answers 200 to everything without decoding it."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _bench_venv() -> Path:
    """The venv every configuration runs from: the built wheel + opentelemetry-distro."""
    python = VENV / "bin" / "python"
    if python.exists():
        return VENV / "bin"
    dist = Path(tempfile.mkdtemp(prefix="crm-otel-bench-dist-"))
    subprocess.run(
        [sys.executable, "-m", "build", "-q", "--wheel", "--outdir", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
    )
    wheel = next(dist.glob("crm_otel-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"{wheel}[example]", OTEL_PINS], check=True
    )
    return VENV / "bin"


def base_env(bin_dir: Path, sink: Sink) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CRM_OTEL_"))}
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        DJANGO_SETTINGS_MODULE="crm.settings",
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{DATABASE}",
        REDIS_URL=REDIS_URL,
        CRM_OTEL_ENVIRONMENT="production",
        CRM_OTEL_METRICS_DIR=tempfile.mkdtemp(prefix="crm-otel-bench-metrics-"),
        OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint,
        OTEL_SERVICE_NAME="crm-backend",
    )
    return env


def prepare(bin_dir: Path, env: dict[str, str]) -> None:
    import psycopg2
    import redis

    connection = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (DATABASE,),
        )
        cursor.execute(f'DROP DATABASE IF EXISTS "{DATABASE}"')
        cursor.execute(f'CREATE DATABASE "{DATABASE}"')
    connection.close()
    redis.Redis.from_url(REDIS_URL).flushdb()
    python = str(bin_dir / "python")
    subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=EXAMPLE, env=env, check=True)
    seed = "from leads.models import Lead\nLead.objects.create(name='Ada', email='a@example.com')"
    subprocess.run([python, "manage.py", "shell", "-c", seed], cwd=EXAMPLE, env=env, check=True)


class Server:
    """gunicorn -w 2 of the example CRM, with or without `opentelemetry-instrument`."""

    def __init__(self, bin_dir: Path, env: dict[str, str], config: Config) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [str(bin_dir / "gunicorn"), "crm.wsgi", "-w", "2", "-b", f"127.0.0.1:{self.port}"]
        if config.instrument:
            args = [str(bin_dir / "opentelemetry-instrument"), *args]
        self.log = tempfile.NamedTemporaryFile(prefix="crm-otel-bench-", suffix=".log")  # noqa: SIM115
        self.process = subprocess.Popen(
            args,
            cwd=EXAMPLE,
            env={**env, **config.env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if all(get(self.url + p, timeout=5)[0] == 200 for p in PATHS):
                    break
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                raise RuntimeError(
                    f"{config.name}: server did not start\n{self.log.read()[-3000:]!r}"
                )
            time.sleep(0.2)

    def worker_cpu(self) -> float:
        """CPU seconds used so far by the gunicorn workers (children of the master)."""
        total = 0.0
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        for pid in children.read_text().split():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log.close()


def _wrk(url: str, seconds: int, connections: int, script: str) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t",
            str(min(2, connections)),
            "-c",
            str(connections),
            "-d",
            f"{max(1, seconds)}s",
            "--latency",
            "-s",
            script,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    result["requests"] = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    for label, key in (("50%", "p50"), ("99%", "p99")):
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        result[key] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx responses under load:\n{out}")
    return result


def measure(
    bin_dir: Path, env: dict[str, str], config: Config, seconds: float, script: str
) -> dict[str, float]:
    """One round of one configuration: throughput at 8 connections, latency at one."""
    server = Server(bin_dir, env, config)
    try:
        _wrk(server.url, 2, 8, script)  # warm-up: imports, caches, connections
        cpu_before = server.worker_cpu()
        loaded = _wrk(server.url, seconds, 8, script)
        cpu = server.worker_cpu() - cpu_before
        single = _wrk(server.url, max(1, seconds // 2), 1, script)
    finally:
        server.stop()
    return {
        "rps": loaded["rps"],
        "cpu_per_1k": cpu / loaded["requests"] * 1000,
        "p50": single["p50"],
        "p99": single["p99"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8, help="load per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--only", default="", help="configuration names separated by ;")
    args = parser.parse_args()
    wanted = {n.strip() for n in args.only.split(";") if n.strip()}
    configs = [c for c in CONFIGS if not wanted or c.name in wanted]
    bin_dir = _bench_venv()
    sink = Sink()
    env = base_env(bin_dir, sink)
    prepare(bin_dir, env)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(WRK_SCRIPT)
    results: dict[str, list[dict[str, float]]] = {c.name: [] for c in configs}
    for round_ in range(args.rounds):
        for config in configs:
            result = measure(bin_dir, env, config, args.seconds, handle.name)
            results[config.name].append(result)
            print(
                f"round {round_ + 1} {config.name:<30} {result['rps']:7.0f} req/s  "
                f"p50 {result['p50']:6.2f} ms  p99 {result['p99']:6.2f} ms  "
                f"cpu {result['cpu_per_1k']:.3f} s/1k",
                flush=True,
            )
    median = {
        name: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        for name, runs in results.items()
    }
    base = median.get("uninstrumented")
    plain = median.get("plain OpenTelemetry")
    print()
    print(
        "| configuration | req/s | / uninstrumented | / plain OTel | p50 ms (1 conn) "
        "| p99 ms (1 conn) | worker CPU s / 1k req |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, m in median.items():
        ratio_base = f"{m['rps'] / base['rps']:.2f}" if base else "-"
        ratio_plain = f"{m['rps'] / plain['rps']:.2f}" if plain else "-"
        print(
            f"| {name} | {m['rps']:.0f} | {ratio_base} | {ratio_plain} | {m['p50']:.2f} "
            f"| {m['p99']:.2f} | {m['cpu_per_1k']:.3f} |"
        )


if __name__ == "__main__":
    main()

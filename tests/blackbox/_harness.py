"""Black-box harness: a local OTLP receiver and the example CRM run as real processes.

The receiver decodes what the SDK's OTLP/HTTP exporters send with the `opentelemetry-proto`
package, as Jaeger's OTLP endpoint would receive it.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "crm"


def _venv_bin() -> Path:
    """Where the CRM's processes come from: the venv named by `CRM_OTEL_TEST_VENV` (CI puts
    the built wheel there, installed non-editable), else the venv running the tests."""
    venv = os.environ.get("CRM_OTEL_TEST_VENV")
    if not venv:
        return Path(sys.executable).parent
    path = Path(venv) / "bin"
    if not (path / "opentelemetry-instrument").exists():
        raise RuntimeError(
            f"CRM_OTEL_TEST_VENV={venv!r}: expected a venv with crm-otel installed "
            "(no bin/opentelemetry-instrument there)"
        )
    return path


BIN = _venv_bin()
PYTHON = str(BIN / "python")
"""The interpreter of the CRM's processes (not necessarily the one running pytest)."""
_SUFFIX = os.environ.get("CRM_OTEL_TEST_SUFFIX", "")
DATABASE = f"crm_otel_test{_SUFFIX}"
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DATABASE}"
REDIS_URL = f"redis://127.0.0.1:6379/{os.environ.get('CRM_OTEL_TEST_REDIS_DB', '5')}"
"""Set `CRM_OTEL_TEST_SUFFIX` and `CRM_OTEL_TEST_REDIS_DB` to run two test sessions side by
side on one machine (each matrix row does)."""


_PORTS = range(20_000, 32_000)
"""Below Linux's ephemeral range (32768-60999 by default): the kernel never gives these to
outgoing connections, so a port handed out here cannot be taken by a client's socket (a
database or Redis connection) before the server meant for it binds."""
_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, not handed out before by
    this process."""
    for _ in range(1000):
        port = random.choice(_PORTS)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {_PORTS}")


def any_value(value: AnyValue) -> Any:
    """The Python value of an OTLP `AnyValue`."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def _attributes(items: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in items}


class OtlpReceiver:
    """An OTLP/HTTP receiver on a free loopback port, keeping what it decodes."""

    def __init__(self, *, respond: bool = True, port: int | None = None) -> None:
        self._lock = threading.Lock()
        self._spans: list[dict[str, Any]] = []
        self._logs: list[dict[str, Any]] = []
        self._metrics: list[Any] = []
        self.requests = 0
        self.respond = respond
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if not receiver.respond:  # an endpoint that accepts and never answers
                    time.sleep(3600)
                reply = receiver._decode(self.path, body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port or free_port()), Handler)
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _decode(self, path: str, body: bytes) -> bytes:
        with self._lock:
            self.requests += 1
        if path.endswith("/v1/traces"):
            trace_request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
            spans = [
                _span(span, _attributes(rs.resource.attributes), ss.scope.name)
                for rs in trace_request.resource_spans
                for ss in rs.scope_spans
                for span in ss.spans
            ]
            with self._lock:
                self._spans.extend(spans)
            return trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        if path.endswith("/v1/logs"):
            logs_request = logs_service_pb2.ExportLogsServiceRequest.FromString(body)
            records = [
                {
                    "body": any_value(record.body),
                    "severity": record.severity_text,
                    "trace_id": record.trace_id.hex(),
                    "span_id": record.span_id.hex(),
                    "attributes": _attributes(record.attributes),
                    "resource": _attributes(rl.resource.attributes),
                }
                for rl in logs_request.resource_logs
                for sl in rl.scope_logs
                for record in sl.log_records
            ]
            with self._lock:
                self._logs.extend(records)
            return logs_service_pb2.ExportLogsServiceResponse().SerializeToString()
        metrics_request = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
        with self._lock:
            self._metrics.append(metrics_request)
        return metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()

    def spans(self) -> list[dict[str, Any]]:
        """Every span received so far, decoded."""
        with self._lock:
            return list(self._spans)

    def log_records(self) -> list[dict[str, Any]]:
        """Every log record received so far, decoded."""
        with self._lock:
            return list(self._logs)

    def metric_requests(self) -> list[Any]:
        """Every `ExportMetricsServiceRequest` received so far."""
        with self._lock:
            return list(self._metrics)

    def wait_for(self, predicate: Callable[[OtlpReceiver], Any], timeout: float = 20.0) -> Any:
        """Poll until `predicate(self)` is truthy and return it; fail after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate(self)
            if result:
                return result
            if time.monotonic() > deadline:
                what = getattr(predicate, "__name__", predicate)
                names = sorted({s["name"] for s in self.spans()})
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what}; "
                    f"received {len(self.spans())} spans: {names}"
                )
            time.sleep(0.1)


def _span(span: Any, resource: dict[str, Any], scope: str) -> dict[str, Any]:
    return {
        "scope": scope,
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex(),
        "name": span.name,
        "kind": span.kind,
        "attributes": _attributes(span.attributes),
        "status_code": span.status.code,
        "status_message": span.status.message,
        "events": [(event.name, _attributes(event.attributes)) for event in span.events],
        "resource": resource,
        "start_ns": span.start_time_unix_nano,
        "end_ns": span.end_time_unix_nano,
        "trace_state": span.trace_state,
    }


def server_span(
    receiver: OtlpReceiver, correlation_id: str, name: str | None = None
) -> dict[str, Any]:
    """Wait for the server span carrying `correlation_id` (and named `name`, if given)."""

    def found(r: OtlpReceiver) -> dict[str, Any] | None:
        for span in r.spans():
            if (
                span["kind"] == 2  # SERVER
                and span["attributes"].get("crm.correlation_id") == correlation_id
                and (name is None or span["name"] == name)
            ):
                return span
        return None

    found.__name__ = f"server span {name or ''} ({correlation_id})"
    return receiver.wait_for(found)  # type: ignore[no-any-return]


def seeded_trace_ids(
    count: int, seed: int, threshold: int, baseline: bool | None = None
) -> list[str]:
    """Seeded trace ids as hex; only those in (or only those outside) the consistent
    baseline of `threshold` when `baseline` says so."""
    from sampling._threshold import RANDOMNESS_MASK

    rng = random.Random(seed)
    ids: list[str] = []
    while len(ids) < count:
        trace_id = rng.getrandbits(128)
        if baseline is not None and ((trace_id & RANDOMNESS_MASK) >= threshold) != baseline:
            continue
        ids.append(f"{trace_id:032x}")
    return ids


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON lines of a process's output (the gunicorn master's own lines are plain)."""
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                lines.append(json.loads(line))
    return lines


def crm_env(receiver: OtlpReceiver | None, **overrides: str) -> dict[str, str]:
    """The environment of a CRM process on real PostgreSQL and Redis, exporting to `receiver`.

    Development by default (every trace kept); pass `CRM_OTEL_ENVIRONMENT="production"` to
    test sampling. Pass a variable as "" to remove it.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "CRM_OTEL_", "DJANGO_", "PYTEST_"))
    }
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
        DJANGO_SETTINGS_MODULE="crm.settings",
        DATABASE_URL=DATABASE_URL,
        REDIS_URL=REDIS_URL,
        CRM_OTEL_ENVIRONMENT="development",
        CRM_OTEL_METRICS_DIR=tempfile.mkdtemp(prefix="crm-otel-metrics-"),
        OTEL_BSP_SCHEDULE_DELAY="200",
        OTEL_BLRP_SCHEDULE_DELAY="200",
    )
    if receiver is not None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
    for name, value in overrides.items():
        if value == "":
            env.pop(name, None)
        else:
            env[name] = value
    return env


@dataclass
class CrmProcess:
    """A process of the example CRM started under `opentelemetry-instrument`."""

    args: list[str]
    env: dict[str, str]
    url: str = ""
    stop_signal: int = signal.SIGTERM
    process: subprocess.Popen[bytes] = field(init=False)
    _log: Any = field(init=False)

    def __post_init__(self) -> None:
        # Output goes to a file, not a pipe nobody drains; the file outlives the process.
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix="crm-otel-proc-", suffix=".log", delete=False
        )
        self.process = subprocess.Popen(
            self.args,
            cwd=EXAMPLE,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        return Path(self._log.name).read_text(errors="replace")

    def wait_output(self, text: str, timeout: float = 30.0) -> None:
        """Wait until `text` appears in the output; fail if the process dies first."""
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared; output:\n{self.output()[-4000:]}")
            time.sleep(0.1)

    def stop(self, timeout: float = 30.0) -> int:
        """Send the stop signal and wait for the process to exit; return its exit code."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self._log.close()
        return self.process.returncode


def get(
    url: str,
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
    timeout: float = 30.0,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request; returns status, headers and body, also for 4xx/5xx."""
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def start_web(
    env: dict[str, str],
    server: str = "runserver",
    workers: int = 2,
    timeout: float = 40.0,
    bin_dir: Path | None = None,
    graceful_timeout: float = 10.0,
) -> CrmProcess:
    """Start the example CRM under `opentelemetry-instrument` and wait until it answers.

    `server` is `runserver` (with `--noreload`), `runserver-autoreload`, `gunicorn`,
    `gunicorn-preload` (the app loaded in the master before the fork) or `uvicorn`
    (ASGI; `--workers` are spawned, not forked); `bin_dir` is the `bin` of another venv
    to run it from (put it first on the env's PATH); `graceful_timeout` is how long
    gunicorn's workers get to exit on SIGTERM before they are killed.
    """
    port = free_port()
    bind = f"127.0.0.1:{port}"
    gunicorn = ["gunicorn", "crm.wsgi", "-w", str(workers), "-b", bind]
    gunicorn += ["--graceful-timeout", f"{graceful_timeout:g}"]
    uvicorn_bind = ["--host", "127.0.0.1", "--port", str(port)]
    commands = {
        "runserver": ["python", "manage.py", "runserver", "--noreload", bind],
        "runserver-autoreload": ["python", "manage.py", "runserver", bind],
        "gunicorn": gunicorn,
        "gunicorn-preload": [*gunicorn, "--preload"],
        "uvicorn": ["uvicorn", "crm.asgi:application", "--workers", str(workers), *uvicorn_bind],
    }
    if server not in commands:
        raise ValueError(f"server: expected one of {sorted(commands)}, got {server!r}")
    args = [str((bin_dir or BIN) / "opentelemetry-instrument"), *commands[server]]
    web = CrmProcess(args, env, url=f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + timeout
    while True:
        if web.process.poll() is not None:
            raise AssertionError(f"{server} exited early:\n{web.output()[-4000:]}")
        with contextlib.suppress(OSError):
            if get(web.url + "/healthz", timeout=2)[0] == 200:
                return web
        if time.monotonic() > deadline:
            web.stop()
            raise AssertionError(f"{server} never answered:\n{web.output()[-4000:]}")
        time.sleep(0.2)


def start_worker(
    env: dict[str, str], concurrency: int = 2, max_tasks_per_child: int | None = None
) -> CrmProcess:
    """Start a Celery prefork worker of the example CRM and wait until it is ready."""
    args = [
        str(BIN / "opentelemetry-instrument"),
        "celery",
        "-A",
        "crm",
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        str(concurrency),
        "-l",
        "info",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    if max_tasks_per_child is not None:
        args += ["--max-tasks-per-child", str(max_tasks_per_child)]
    worker = CrmProcess(args, env)
    worker.wait_output("ready.", timeout=60)
    return worker


@contextlib.contextmanager
def running(process: CrmProcess) -> Iterator[CrmProcess]:
    """Stop `process` when the block exits."""
    try:
        yield process
    finally:
        process.stop()


def _reachable(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def require_services() -> None:
    """PostgreSQL and Redis must be up: under CI a missing service fails, never skips."""
    import pytest

    missing = [
        name for name, port in (("PostgreSQL", 5432), ("Redis", 6379)) if not _reachable(port)
    ]
    if missing:
        message = f"not running on 127.0.0.1: {', '.join(missing)}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def reset_database() -> None:
    """Create a fresh PostgreSQL database for the example CRM and migrate it (untraced)."""
    import psycopg2

    connection = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (DATABASE,)
        )
        cursor.execute(f'DROP DATABASE IF EXISTS "{DATABASE}"')
        cursor.execute(f'CREATE DATABASE "{DATABASE}"')
    connection.close()
    env = crm_env(None)
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "-v0"],
        cwd=EXAMPLE,
        env=env,
        check=True,
        timeout=120,
    )


def reset_redis() -> None:
    """Empty the Redis database the example CRM uses (cache and broker)."""
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()

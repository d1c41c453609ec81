"""Faults production meets: a worker killed mid-load, a full metrics disk, Redis restarting,
megabyte headers. The CRM keeps serving, what is lost is bounded and counted, and what
goes wrong is said once."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.blackbox._harness import (
    crm_env,
    free_port,
    get,
    json_lines,
    running,
    start_web,
    start_worker,
)

pytestmark = pytest.mark.blackbox

LEADS = "/api/v1/leads/"
WRITE_INTERVAL_S = 0.5
"""`CRM_OTEL_METRICS_WRITE_INTERVAL_MS`'s default: what a SIGKILL may lose."""
MAX_LINE = 128 * 1024
"""Bounded whatever the input: a message is cut at 16,384 characters, each at most six
once escaped (invalid UTF-8 becomes `\\u00ff`)."""


def _metric(body: str, family: str, **labels: str) -> float:
    total = 0.0
    for line in body.splitlines():
        if not line.startswith((family + "{", family + " ")):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _state_files(metrics_dir: str) -> list[Path]:
    return [p for p in Path(metrics_dir).rglob("*.json") if p.is_file()]


def _workers(master: int) -> list[int]:
    path = Path(f"/proc/{master}/task/{master}/children")
    return [int(p) for p in path.read_text().split()]


class _Load:
    """Sequential GETs on a thread until stopped; when each answered, and with what."""

    def __init__(self, url: str, path: str = LEADS) -> None:
        parts = urlsplit(url)
        self._host, self._port, self._path = parts.hostname or "", parts.port or 0, path
        self.answered: list[tuple[float, int]] = []
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            connection = http.client.HTTPConnection(self._host, self._port, timeout=30)
            try:
                connection.request("GET", self._path)
                status = connection.getresponse().status
                self.answered.append((time.monotonic(), status))
            except (OSError, http.client.HTTPException):
                self.failed += 1
            finally:
                connection.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)


def test_sigkill_mid_load_loses_at_most_a_write_interval(crm: None) -> None:
    """A gunicorn worker SIGKILLed while requests stream in: the merged count loses at most
    what was answered in the last write interval before the kill, never counts more than
    was served, and every state file left in the metrics directory still parses."""
    env = crm_env(None, OTEL_TRACES_EXPORTER="none", CRM_OTEL_LOG_LEVEL="WARNING")
    with running(start_web(env, server="gunicorn", workers=2)) as web:
        load = _Load(web.url)
        time.sleep(3)
        victim = _workers(web.process.pid)[0]
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        time.sleep(3)
        load.stop()
        time.sleep(2 * WRITE_INTERVAL_S + 0.2)
        totals = [
            _metric(get(web.url + "/metrics")[2].decode(), "http_requests_total", path=LEADS)
            for _ in range(6)
        ]
        files = _state_files(env["CRM_OTEL_METRICS_DIR"])
        parsed = [json.loads(p.read_text()) for p in files]
        output = web.output()
    served = sum(1 for _, status in load.answered if status == 200)
    # Scheduling on a loaded machine can delay a write: allow one more interval.
    window = [t for t, _ in load.answered if killed_at - 2 * WRITE_INTERVAL_S <= t <= killed_at]
    assert served > 50, served
    assert all(status == 200 for _, status in load.answered)
    assert len(set(totals)) == 1, totals
    lost = served - totals[0]
    assert 0 <= lost <= len(window), (lost, len(window), served)
    assert parsed and all(isinstance(p, dict) for p in parsed)
    assert "metrics merge:" not in output
    assert "unreadable" not in output


@contextlib.contextmanager
def _small_tmpfs(size: str) -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="crm-otel-tmpfs-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        os.rmdir(directory)
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)
        with contextlib.suppress(OSError):
            os.rmdir(directory)


def _remount(directory: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(directory)], check=True)


def test_read_only_metrics_disk_is_said_once_and_the_app_serves(crm: None) -> None:
    """The metrics directory's disk turns read-only under a running server: requests are
    still served, each process says once that it cannot write its state, `/metrics` still
    answers from what each process holds, and once the disk is writable again the counts
    are exact."""
    with _small_tmpfs("1m") as disk:
        env = crm_env(None, OTEL_TRACES_EXPORTER="none", CRM_OTEL_METRICS_DIR=str(disk / "m"))
        with running(start_web(env, server="gunicorn", workers=2)) as web:
            for _ in range(10):
                assert get(web.url + LEADS)[0] == 200
            _remount(disk, "ro")
            try:
                for _ in range(40):
                    assert get(web.url + LEADS)[0] == 200
                time.sleep(1.2)  # several write intervals, all failing
                status, _, body = get(web.url + "/metrics")
            finally:
                _remount(disk, "rw")
            time.sleep(1.2)
            totals = {
                _metric(get(web.url + "/metrics")[2].decode(), "http_requests_total", path=LEADS)
                for _ in range(6)
            }
            output = web.output()
    assert status == 200
    assert _metric(body.decode(), "http_requests_total", path=LEADS) >= 10
    said = [
        line
        for line in json_lines(output)
        if "cannot write its metrics state" in str(line.get("message"))
    ]
    assert 1 <= len(said) <= 3, said  # at most once per process: master and two workers
    assert all("Read-only file system" in line["message"] for line in said), said
    assert "Traceback" not in output
    assert totals == {50.0}, totals


def _start_redis(port: int) -> subprocess.Popen[bytes]:
    """A private redis-server on `port` (never the shared one), answering."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process
        assert time.monotonic() < deadline, "private redis-server never answered"
        time.sleep(0.1)


def _stop_redis(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        process.wait(10)


def _tasks_counted(url: str) -> float:
    """`celery_tasks_total` on the worker's port, 0 while nothing answers there (the
    deadline's message then shows the worker's output)."""
    try:
        return _metric(get(url)[2].decode(), "celery_tasks_total")
    except OSError:
        return 0.0


def test_redis_restart_keeps_serving_and_recovers(crm: None) -> None:
    """The CRM's Redis (cache, broker, keep-signal relay) restarts under load: requests that
    need no Redis are served throughout, `/metrics` answers, the stats poller's failure is
    said at most once per process, the relay has no failed rounds once Redis is back, and
    a task sent afterwards runs and is counted."""
    port = free_port()
    env = crm_env(
        None,
        OTEL_TRACES_EXPORTER="none",
        CRM_OTEL_ENVIRONMENT="production",
        REDIS_URL=f"redis://127.0.0.1:{port}/0",
        CRM_OTEL_METRICS_REDIS_POLL_SECONDS="1",
    )
    worker_env = {**env, "CRM_OTEL_METRICS_PORT": str(free_port())}
    celery_url = f"http://127.0.0.1:{worker_env['CRM_OTEL_METRICS_PORT']}/metrics"
    redis_server = _start_redis(port)
    try:
        web = start_web(env, server="gunicorn", workers=2)
        with running(web), running(start_worker(worker_env, concurrency=1)) as worker:
            assert get(web.url + "/api/v1/leads/1/sync/")[0] == 202
            _stop_redis(redis_server)
            down = [get(web.url + LEADS)[0] for _ in range(20)]
            time.sleep(2)
            during = get(web.url + "/metrics")
            errors_during = _metric(during[2].decode(), "crm_otel_sampling_relay_errors_total")
            redis_server = _start_redis(port)
            time.sleep(4)  # the relay's and the poller's next rounds; the worker reconnects
            up = [get(web.url + LEADS)[0] for _ in range(10)]
            errors_after_restart = _metric(
                get(web.url + "/metrics")[2].decode(), "crm_otel_sampling_relay_errors_total"
            )
            assert get(web.url + "/api/v1/leads/1/sync/")[0] == 202
            deadline = time.monotonic() + 30
            while _tasks_counted(celery_url) < 1:
                assert time.monotonic() < deadline, worker.output()[-3000:]
                time.sleep(0.5)
            for _ in range(10):
                get(web.url + LEADS)
            time.sleep(3)
            errors_later = _metric(
                get(web.url + "/metrics")[2].decode(), "crm_otel_sampling_relay_errors_total"
            )
            output = web.output()
    finally:
        _stop_redis(redis_server)
    assert down == [200] * 20, down
    assert up == [200] * 10, up
    assert during[0] == 200
    assert errors_later == errors_after_restart, (errors_during, errors_after_restart, errors_later)
    poller = [
        line
        for line in json_lines(output)
        if "reading Redis stats failed" in str(line.get("message"))
    ]
    assert len(poller) <= 3, poller  # at most once per process: master and two workers
    assert "Traceback" not in output


def _raw(url: str, request: bytes) -> int:
    """Send raw bytes; the status the server answered (0 when it hung up)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(request)
        reply = b""
        with contextlib.suppress(OSError):
            while b"\r\n" not in reply:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/") else 0


def test_megabyte_and_invalid_utf8_headers_and_paths_are_bounded(crm: None) -> None:
    """With gunicorn's own request limits off, 1 MB and invalid-UTF-8 correlation ids, user
    agents and paths reach Django: each is answered, its log line stays bounded, none
    becomes a correlation id, and the server keeps serving."""
    env = crm_env(
        None,
        OTEL_TRACES_EXPORTER="none",
        GUNICORN_CMD_ARGS="--limit-request-line 0 --limit-request-field_size 0",
    )
    megabyte = b"A" * 1_000_000
    bad = b"\xff\xfe\xc3(" * 1000
    head = b"HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    requests = [
        b"GET /api/v1/leads/ " + head + b"X-Correlation-ID: " + megabyte + b"\r\n\r\n",
        b"GET /api/v1/leads/ " + head + b"X-Correlation-ID: " + bad + b"\r\n\r\n",
        b"GET /api/v1/leads/ " + head + b"User-Agent: " + megabyte + b"\r\n\r\n",
        b"GET /api/v1/leads/ " + head + b"User-Agent: " + bad + b"\r\n\r\n",
        b"GET /no/such/" + megabyte + b" " + head + b"\r\n",
        b"GET /no/such/" + bad + b" " + head + b"\r\n",
    ]
    with running(start_web(env, server="gunicorn", workers=2)) as web:
        statuses = [_raw(web.url, request) for request in requests]
        assert get(web.url + LEADS)[0] == 200
        time.sleep(0.5)
        output = web.output()
    assert all(status in (200, 400, 404, 431) for status in statuses), statuses
    assert max(len(line) for line in output.splitlines()) < MAX_LINE
    access = [line for line in json_lines(output) if line.get("logger") == "crm.access"]
    ids = {line.get("correlation_id") for line in access}
    assert not any(i and ("AAAA" in i or "\ufffd" in i) for i in ids), ids
    assert "Traceback" not in output

"""Hostile input and broken surroundings: the CRM keeps serving, lines stay bounded,
labels stay bounded, and what goes wrong is said once."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.blackbox._harness import OtlpReceiver, crm_env, get, json_lines, running, start_web

pytestmark = pytest.mark.blackbox

LEADS = "/api/v1/leads/"
MAX_LINE = 16_384
"""No JSON line may grow with the input beyond this (the request's own fields are capped
far below it)."""


def _raw_request(url: str, path: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    """Send bytes as they are, on a plain socket (no client encoding or validation); the
    status the server answered."""
    parts = urlsplit(url)
    head = b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    head += b"".join(name + b": " + value + b"\r\n" for name, value in headers) + b"\r\n"
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(head)
        reply = b""
        while b"\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return int(reply.split(b" ", 2)[1])


def test_hostile_headers_and_paths_are_bounded(crm: None, receiver: OtlpReceiver) -> None:
    """Oversized and invalid-UTF-8 correlation ids, user agents and paths are answered,
    logged in bounded lines, and never become a correlation id; the server keeps serving."""
    with running(start_web(crm_env(receiver), server="gunicorn", workers=2)) as web:
        big = b"A" * 7000  # under gunicorn's 8190-byte header line limit
        statuses = [
            _raw_request(web.url, b"/api/v1/leads/", [(b"X-Correlation-ID", big)]),
            _raw_request(web.url, b"/api/v1/leads/", [(b"User-Agent", big)]),
            _raw_request(web.url, b"/api/v1/leads/", [(b"X-Correlation-ID", b"ok\xff\xfe\xc3(")]),
            _raw_request(web.url, b"/api/v1/leads/", [(b"User-Agent", b"\xff\xfe bad \xc3(")]),
            _raw_request(web.url, b"/no/such/" + b"x" * 3500, []),  # gunicorn: <= 4094
            _raw_request(web.url, b"/no/such/\xff\xfe%ff%fe", []),
        ]
        assert all(status in (200, 400, 404) for status in statuses), statuses
        assert get(web.url + "/api/v1/leads/")[0] == 200
        time.sleep(0.5)
        output = web.output()
    lines = output.splitlines()
    assert max(len(line) for line in lines) < MAX_LINE
    access = [line for line in json_lines(output) if line.get("logger") == "crm.access"]
    assert len(access) >= len(statuses)
    ids = {line.get("correlation_id") for line in access}
    assert not any(i and ("AAAA" in i or "\ufffd" in i or "\xff" in i) for i in ids), ids
    assert "Traceback" not in output


def test_distinct_unmatched_paths_share_one_series(crm: None) -> None:
    """Ten thousand distinct paths that match no route make one `path` series."""
    env = crm_env(None, OTEL_TRACES_EXPORTER="none", CRM_OTEL_LOG_LEVEL="WARNING")
    with running(start_web(env, server="gunicorn", workers=2)) as web:
        parts = urlsplit(web.url)
        sent = 10_000
        statuses: list[int] = []

        def probe(start: int) -> None:
            for i in range(start, sent, 4):
                connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
                connection.request("GET", f"/probe/{i}/admin.php?id={i}")
                statuses.append(connection.getresponse().status)
                connection.close()

        clients = [threading.Thread(target=probe, args=(start,)) for start in range(4)]
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        assert statuses == [404] * sent
        time.sleep(1.2)
        body = get(web.url + "/metrics")[2].decode()
    series = [line for line in body.splitlines() if line.startswith("http_requests_total{")]
    paths = {line.split('path="', 1)[1].split('"', 1)[0] for line in series}
    assert paths <= {"unmatched", "/healthz"}, sorted(paths)[:20]
    unmatched = sum(float(line.rsplit(" ", 1)[1]) for line in series if "unmatched" in line)
    assert unmatched == sent


def test_unusable_metrics_directory_is_said_once_and_the_app_serves(
    crm: None, receiver: OtlpReceiver
) -> None:
    """A metrics directory that cannot be created: one line naming the variable, the
    default directory is used, requests are served and traced, and `/metrics` counts them
    exactly."""
    env = crm_env(receiver, CRM_OTEL_METRICS_DIR="/dev/null/crm-otel-metrics")
    with running(start_web(env, server="gunicorn", workers=2)) as web:
        for i in range(20):
            assert get(web.url + "/api/v1/leads/", {"X-Correlation-ID": f"nodir-{i}"})[0] == 200
        time.sleep(1.2)
        status, _, body = get(web.url + "/metrics")
        assert status == 200
        leads = [
            float(line.rsplit(" ", 1)[1])
            for line in body.decode().splitlines()
            if line.startswith("http_requests_total{") and 'path="/api/v1/leads/"' in line
        ]
        assert sum(leads) == 20

        def traced(r: OtlpReceiver) -> bool:
            ids = {s["attributes"].get("crm.correlation_id") for s in r.spans()}
            return all(f"nodir-{i}" in ids for i in range(20))

        receiver.wait_for(traced)
        time.sleep(1.5)  # several write intervals
        output = web.output()
    mentions = [line for line in output.splitlines() if "/dev/null/crm-otel-metrics" in line]
    assert len(mentions) == 1, mentions
    assert "CRM_OTEL_METRICS_DIR: expected a directory" in mentions[0]
    assert "Traceback" not in output


def _metric(body: str, family: str, **labels: str) -> float:
    total = 0.0
    for line in body.splitlines():
        if not line.startswith(family + "{") and not line.startswith(family + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_sigkilled_worker_loses_nothing_written(crm: None) -> None:
    """A gunicorn worker killed with SIGKILL a write interval after its last request: its
    counts are kept, the replacement worker's add to them, and no merge problem is logged."""
    env = crm_env(None, OTEL_TRACES_EXPORTER="none")
    with running(start_web(env, server="gunicorn", workers=2)) as web:
        parts = urlsplit(web.url)

        def burst(count: int) -> None:
            for _ in range(count):
                connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
                connection.request("GET", "/api/v1/leads/")
                assert connection.getresponse().status == 200
                connection.close()

        burst(60)
        time.sleep(1.2)  # past the write interval: both workers' files hold their counts
        children = Path(f"/proc/{web.process.pid}/task/{web.process.pid}/children")
        victim = int(children.read_text().split()[0])
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while str(victim) in children.read_text().split() or len(children.read_text().split()) < 2:
            assert time.monotonic() < deadline, "gunicorn did not replace the killed worker"
            time.sleep(0.2)
        burst(40)
        time.sleep(1.2)
        totals = {
            _metric(get(web.url + "/metrics")[2].decode(), "http_requests_total", path=LEADS)
            for _ in range(6)
        }
        output = web.output()
    assert totals == {100.0}, totals
    assert "metrics merge:" not in output


def test_hung_requests_keep_the_buffer_at_its_cap(crm: None, receiver: OtlpReceiver) -> None:
    """Requests that hang hold open traces; the sampler's buffer stays at its cap, the
    forced decisions are counted, and a later request is still served and traced."""
    env = crm_env(
        receiver,
        CRM_OTEL_ENVIRONMENT="production",
        CRM_OTEL_SAMPLING_MAX_BUFFERED_SPANS="5",
        CRM_OTEL_SAMPLING_MAX_TRACE_AGE_MS="1500",
        GUNICORN_CMD_ARGS="--threads 12",
    )
    with running(start_web(env, server="gunicorn", workers=1)) as web:
        hung = [
            threading.Thread(target=get, args=(web.url + "/api/v1/slow/?ms=4000",))
            for _ in range(10)
        ]
        for thread in hung:
            thread.start()
        time.sleep(2.5)  # all are in flight, past the trace age
        body = get(web.url + "/metrics")[2].decode()
        buffered = _metric(body, "crm_otel_sampling_spans_buffered")
        forced = _metric(body, "crm_otel_sampling_forced_decisions_total")
        status = get(web.url + "/api/v1/boom/", {"X-Correlation-ID": "after-flood"})[0]
        for thread in hung:
            thread.join(30)

        def error_kept(r: OtlpReceiver) -> bool:
            return any(
                s["attributes"].get("crm.correlation_id") == "after-flood" for s in r.spans()
            )

        receiver.wait_for(error_kept)
    assert status == 500
    assert buffered <= 5, buffered
    assert forced >= 5, forced

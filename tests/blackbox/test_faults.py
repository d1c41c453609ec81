"""Hostile input and broken surroundings: the CRM keeps serving, lines stay bounded,
labels stay bounded, and what goes wrong is said once."""

from __future__ import annotations

import http.client
import socket
import time
from urllib.parse import urlsplit

import pytest

from tests.blackbox._harness import OtlpReceiver, crm_env, get, json_lines, running, start_web

pytestmark = pytest.mark.blackbox

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
    """Thousands of distinct paths that match no route make one `path` series."""
    env = crm_env(None, OTEL_TRACES_EXPORTER="none", CRM_OTEL_LOG_LEVEL="WARNING")
    with running(start_web(env, server="gunicorn", workers=2)) as web:
        parts = urlsplit(web.url)
        sent = 3000
        for i in range(sent):
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
            connection.request("GET", f"/probe/{i}/admin.php?id={i}")
            assert connection.getresponse().status == 404
            connection.close()
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

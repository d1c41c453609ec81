"""`tests/_prometheus.py`: a real Prometheus scrapes a real exposition server, queried over HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from tests._prometheus import PrometheusError, PrometheusServer
from tests.deploy import conftest
from tests.deploy.conftest import require_tool

TOKEN = "s3cret-scrape-token"


class Exposition:
    """A tiny prometheus_client exposition server that may demand a bearer token."""

    def __init__(self, registry: CollectorRegistry, token: str | None = None) -> None:
        self.authorizations: list[str | None] = []
        exposition = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                authorization = self.headers.get("Authorization")
                exposition.authorizations.append(authorization)
                if self.path != "/custom/metrics":
                    self.send_error(404)
                    return
                if token is not None and authorization != f"Bearer {token}":
                    self.send_error(401)
                    return
                body = generate_latest(registry)
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE_LATEST)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.target = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


PATH_LABEL = {"path": "/api/v1/leads/"}


def _counter(registry: CollectorRegistry) -> Counter:
    counter = Counter("http_requests", "Requests served.", ["path"], registry=registry)
    counter.labels(**PATH_LABEL).inc(3)
    return counter


@pytest.fixture(scope="module")
def registry() -> CollectorRegistry:
    """A registry shared by the module's plain scrape, holding `http_requests_total`."""
    registry = CollectorRegistry()
    _counter(registry)
    return registry


@pytest.fixture(scope="module")
def prometheus(registry: CollectorRegistry) -> Iterator[tuple[PrometheusServer, Exposition]]:
    """One Prometheus scraping one exposition without a token (starting one costs ~5 s)."""
    require_tool("prometheus")
    exposition = Exposition(registry)
    server = PrometheusServer([exposition.target], metrics_path="/custom/metrics")
    try:
        yield server.start(), exposition
    finally:
        server.stop()
        exposition.close()


def test_scrapes_and_queries_real_series(
    prometheus: tuple[PrometheusServer, Exposition], registry: CollectorRegistry
) -> None:
    """Prometheus scrapes the exposition under job crm-backend and `query` returns its value."""
    server, exposition = prometheus
    expected = registry.get_sample_value("http_requests_total", PATH_LABEL)
    rows = server.wait_until(
        'http_requests_total{job="crm-backend"}',
        lambda rows: len(rows) == 1 and float(rows[0]["value"][1]) == expected,
        timeout=20,
    )
    assert rows[0]["metric"]["path"] == "/api/v1/leads/"
    assert rows[0]["metric"]["instance"] == exposition.target
    assert server.query('up{job="crm-backend"}')[0]["value"][1] == "1"


def test_sees_new_samples_scraped_every_second(
    prometheus: tuple[PrometheusServer, Exposition], registry: CollectorRegistry
) -> None:
    """A counter incremented after a first scrape shows its new value within seconds."""
    server, _ = prometheus
    server.wait_until("http_requests_total", bool, timeout=20)
    counter = Counter("http_scrapes_seen", "Incremented during the test.", registry=registry)
    counter.inc(4)
    rows = server.wait_until(
        "sum(http_scrapes_seen_total)",
        lambda rows: rows and float(rows[0]["value"][1]) == 4.0,
        timeout=20,
    )
    assert float(rows[0]["value"][1]) == 4.0
    counter.inc(3)
    server.wait_until(
        "sum(http_scrapes_seen_total)",
        lambda rows: rows and float(rows[0]["value"][1]) == 7.0,
        timeout=10,
    )


def test_bad_promql_raises(prometheus: tuple[PrometheusServer, Exposition]) -> None:
    """A syntax error comes back as `PrometheusError` naming HTTP 400, never as empty data."""
    server, _ = prometheus
    with pytest.raises(PrometheusError, match="HTTP 400"):
        server.query("sum(rate(http_requests_total[5m])")
    assert server.query("vector(1)")[0]["value"][1] == "1"


def test_bearer_token_is_sent() -> None:
    """With `bearer_token` the scrape carries `Authorization: Bearer ...` and succeeds."""
    require_tool("prometheus")
    registry = CollectorRegistry()
    _counter(registry)
    guarded = Exposition(registry, token=TOKEN)
    try:
        with PrometheusServer(
            [guarded.target], metrics_path="/custom/metrics", bearer_token=TOKEN
        ) as prometheus:
            prometheus.wait_until('up{job="crm-backend"} == 1', bool, timeout=20)
    finally:
        guarded.close()
    assert f"Bearer {TOKEN}" in guarded.authorizations


def test_missing_token_marks_target_down() -> None:
    """Without the token the guarded target answers 401 and Prometheus records `up == 0`."""
    require_tool("prometheus")
    registry = CollectorRegistry()
    _counter(registry)
    guarded = Exposition(registry, token=TOKEN)
    try:
        with PrometheusServer([guarded.target], metrics_path="/custom/metrics") as prometheus:
            prometheus.wait_until('up{job="crm-backend"} == 0', bool, timeout=20)
            assert prometheus.query("http_requests_total") == []
    finally:
        guarded.close()


def test_stop_ends_the_process() -> None:
    """After `stop()` nothing answers on the port any more and the storage is gone."""
    require_tool("prometheus")
    server = PrometheusServer().start()
    assert server.query("vector(1)")
    server.stop()
    with pytest.raises(OSError):
        server.query("vector(1)")
    assert not server._directory.exists()


def test_missing_tool_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the binary, `require_tool` fails the test under `CI=true` and skips it otherwise."""
    monkeypatch.setattr(conftest, "find_binary", lambda name: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install prometheus"):
        require_tool("promtool")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        require_tool("promtool")

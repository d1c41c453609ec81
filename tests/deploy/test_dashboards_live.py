"""Every dashboard query returns data from a real Prometheus scraping the example CRM under load.

The CRM runs under `opentelemetry-instrument gunicorn -w 2` on real PostgreSQL and Redis
while a thread sends it a mix of requests (successes, 404s, 500s, failing workflows, cache
hits and misses). Prometheus scrapes its `/metrics` every second with the rules of
`deploy/prometheus` loaded, and each panel's query is run through the HTTP API, as Grafana
would run it (Grafana itself cannot be installed here).
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests._prometheus import PrometheusServer
from tests.blackbox._harness import (
    CrmProcess,
    OtlpReceiver,
    crm_env,
    get,
    require_services,
    reset_database,
    reset_redis,
    start_web,
)
from tests.deploy import _names
from tests.deploy.conftest import require_tool

pytestmark = pytest.mark.blackbox

DATA_TIMEOUT = 60.0
"""Seconds from Prometheus's start within which every query must return data (first scrape
after ~5 s, then two samples in each 1m rate window); shared by all the queries."""

LATE_GRACE = 5.0
"""Seconds each query still gets once the shared deadline has passed."""


def _rules_evaluated_every_scrape(directory: Path) -> list[Path]:
    """Copies of the rule files without group intervals, so slow groups evaluate every second."""
    copies = []
    for path in _names.rule_files():
        document = yaml.safe_load(path.read_text())
        for group in document["groups"]:
            group.pop("interval", None)
        copy = directory / path.name
        copy.write_text(yaml.safe_dump(document, sort_keys=False))
        copies.append(copy)
    return copies


class Traffic:
    """A thread sending the example CRM a steady mix of requests until stopped."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sent = 0
        self.statuses: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _request(self, path: str, data: bytes | None = None) -> tuple[int, bytes]:
        status, _, body = get(self.url + path, data=data, timeout=15)
        self.sent += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1
        return status, body

    def _run(self) -> None:
        round_ = 0
        while not self._stop.is_set():
            round_ += 1
            with contextlib.suppress(OSError):
                status, body = self._request(
                    "/api/v1/leads/",
                    json.dumps({"name": f"Lead {round_}", "company": "Acme"}).encode(),
                )
                lead = json.loads(body)["id"] if status == 201 else 1
                self._request("/api/v1/leads/")
                self._request(f"/api/v1/leads/{lead}/")
                self._request(f"/api/v1/leads/{lead}/score/")  # a cache miss
                self._request(f"/api/v1/leads/{lead}/score/")  # a cache hit
                self._request(f"/api/v1/search/?q=lead{round_ % 3}")
                self._request("/api/v1/workflows/1/execute/", data=b"")
                if round_ % 3 == 0:
                    self._request("/api/v1/workflows/1/execute/?fail=1", data=b"")
                    self._request("/api/v1/boom/")
                    self._request("/no/such/route/")
                self._request("/api/v1/slow/?ms=20")
            self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


@dataclass
class Live:
    """The running stack: CRM, traffic and Prometheus."""

    web: CrmProcess
    traffic: Traffic
    prometheus: PrometheusServer
    deadline: float

    def timeout(self) -> float:
        """Seconds left before the shared deadline, at least `LATE_GRACE`."""
        return max(self.deadline - time.monotonic(), LATE_GRACE)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The example CRM under gunicorn with traffic, scraped by Prometheus with the rules loaded."""
    require_tool("prometheus")
    require_services()
    reset_database()
    reset_redis()
    receiver = OtlpReceiver()
    # Production, so that the tail sampler decides (and reports) as it would in service.
    env = crm_env(receiver, CRM_OTEL_ENVIRONMENT="production", CRM_OTEL_METRICS_PORT="0")
    web = start_web(env, server="gunicorn", workers=2)
    traffic = Traffic(web.url)
    target = web.url.removeprefix("http://")
    rules = _rules_evaluated_every_scrape(tmp_path_factory.mktemp("rules"))
    prometheus = PrometheusServer([target], metrics_path="/metrics", rule_files=rules)
    try:
        prometheus.start()
        yield Live(web, traffic, prometheus, time.monotonic() + DATA_TIMEOUT)
    finally:
        traffic.stop()
        prometheus.stop()
        web.stop()
        receiver.close()


def _has_finite_value(rows: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(row["value"][1])) for row in rows)


def test_crm_is_scraped(live: Live) -> None:
    """Prometheus scrapes the CRM's `/metrics` successfully (`up == 1`) while traffic flows."""
    rows = live.prometheus.wait_until('up{job="crm-backend"} == 1', bool, timeout=live.timeout())
    assert rows, live.web.output()[-3000:]
    assert live.traffic.sent > 0


@pytest.mark.parametrize(
    "query", _names.panel_queries(), ids=lambda q: f"{q[0]}:{q[1]}:{q[2]}".replace(" ", "_")
)
def test_panel_query_returns_data(live: Live, query: tuple[str, str, str, str]) -> None:
    """The panel's query returns at least one series with a finite value."""
    stem, title, ref_id, expr = query
    try:
        rows = live.prometheus.wait_until(expr, _has_finite_value, timeout=live.timeout())
    except AssertionError as error:
        names = sorted(_names.metric_names(expr))
        present = {
            name: bool(live.prometheus.query(f'count({name}{{job="crm-backend"}})'))
            for name in names
        }
        raise AssertionError(
            f"{stem} / {title} ({ref_id}) returned no data; series present: {present}; "
            f"traffic statuses {live.traffic.statuses}"
        ) from error
    assert _has_finite_value(rows)


def test_rules_evaluate_without_error_on_real_data(live: Live) -> None:
    """Every alerting and recording rule evaluates healthily against the CRM's real series."""
    live.prometheus.wait_until(
        "job:api_availability_errors:ratio_rate5m", bool, timeout=live.timeout()
    )
    rules = [rule for group in live.prometheus.rules() for rule in group["rules"]]
    assert {rule["name"] for rule in rules} == {
        rule.get("alert") or rule["record"] for rule in _names.rules()
    }, "not every rule file was loaded"
    problems = {rule["name"]: rule.get("lastError") for rule in rules if rule.get("health") != "ok"}
    assert problems == {}


def test_latency_slo_bucket_boundary_is_exposed(live: Live) -> None:
    """`http_request_duration_ms` has the 1000 ms bucket the latency SLO counts against."""
    rows = live.prometheus.wait_until(
        'http_request_duration_ms_bucket{job="crm-backend", le=~"1000(\\\\.0)?"}',
        bool,
        timeout=live.timeout(),
    )
    assert rows

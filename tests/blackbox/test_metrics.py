"""Metrics end to end: the example CRM under `opentelemetry-instrument gunicorn -w 4` on
real PostgreSQL and Redis, a Celery prefork worker, and a real Prometheus scraping both."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests._prometheus import PrometheusServer, find_binary
from tests.blackbox._harness import (
    EXAMPLE,
    PYTHON,
    REDIS_URL,
    CrmProcess,
    crm_env,
    free_port,
    get,
    start_web,
    start_worker,
)
from tests.semconv.test_metrics_catalogue import DESIGN_FAMILIES

pytestmark = pytest.mark.blackbox

TOKEN = "s3cret-scrape-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LEADS, DETAIL, SCORE = "/api/v1/leads/", "/api/v1/leads/<int:pk>/", "/api/v1/leads/<int:pk>/score/"
WORKFLOW, SEARCH, BOOM = "/api/v1/workflows/<int:pk>/execute/", "/api/v1/search/", "/api/v1/boom/"
TEMPLATES = {LEADS, DETAIL, SCORE, WORKFLOW, SEARCH, BOOM, "/api/v1/slow/", "/healthz", "unmatched"}
ATTACK = 1000
CREATED = 5
TASK = "leads.tasks.score_new_lead"
CLAIM_KEY = "crm-otel-metrics-test:claim"
"""Set with NX in a Redis database these tests take for themselves: other black-box tests,
and another run of these, must not feed tasks to this worker (or take its tasks)."""


@dataclass(frozen=True)
class Services:
    """A PostgreSQL database and a Redis database (broker and cache) of one test's own."""

    database: str
    redis_url: str

    def env(self, **overrides: str) -> dict[str, str]:
        return crm_env(
            None,
            OTEL_TRACES_EXPORTER="none",
            REDIS_URL=self.redis_url,
            DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{self.database}",
            **overrides,
        )


def _postgres(statements: list[str]) -> None:
    import psycopg2

    connection = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
    connection.close()


@contextlib.contextmanager
def _own_services() -> Iterator[Services]:
    """Claim a free Redis database and create and migrate a PostgreSQL database."""
    import redis

    claimed = None
    own = int(REDIS_URL.rsplit("/", 1)[1])  # the session's own database is never free
    for db in (d for d in (6, 7, 8, 9, 10, 11, 12, 13, 15) if d != own):
        client = redis.Redis(host="127.0.0.1", port=6379, db=db)
        if client.set(CLAIM_KEY, os.getpid(), nx=True, ex=900) and client.dbsize() == 1:
            claimed = client
            break
        client.close()
    assert claimed is not None, "no free Redis database among 6-15"
    database = f"crm_otel_metrics_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    services = Services(
        database, f"redis://127.0.0.1:6379/{claimed.connection_pool.connection_kwargs['db']}"
    )
    _postgres([f'CREATE DATABASE "{database}"'])
    try:
        subprocess.run(
            [PYTHON, "manage.py", "migrate", "-v0"],
            cwd=EXAMPLE,
            env=services.env(),
            check=True,
            timeout=120,
        )
        yield services
    finally:
        _postgres(
            [
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{database}'",
                f'DROP DATABASE IF EXISTS "{database}"',
            ]
        )
        claimed.flushdb()
        claimed.close()


@dataclass
class Deployment:
    """gunicorn -w 4 and a Celery worker sharing a metrics directory, and what was sent."""

    web: CrmProcess
    worker: CrmProcess
    worker_port: int
    expected: Counter[tuple[str, str, str]]


def _scrape(
    url: str, headers: dict[str, str] | None = AUTH
) -> dict[str, list[tuple[dict[str, str], float]]]:
    status, _, body = get(url, headers=headers)
    assert status == 200, body[:500]
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def _requests(
    samples: dict[str, list[tuple[dict[str, str], float]]],
) -> Counter[tuple[str, str, str]]:
    return Counter(
        {
            (labels["method"], labels["path"], labels["status"]): int(value)
            for labels, value in samples.get("http_requests_total", [])
            if labels["path"] != "/healthz"  # the harness polls it until the server answers
        }
    )


def _send(web: CrmProcess) -> Counter[tuple[str, str, str]]:
    """A known mix of requests over several routes, some failing; returns the expected counts."""
    expected: Counter[tuple[str, str, str]] = Counter()

    def call(method: str, path: str, template: str, want: int, data: bytes | None = None) -> bytes:
        status, _, body = get(
            web.url + path,
            data=data,
            headers={"Content-Type": "application/json"} if data else None,
        )
        assert status == want, (path, status, body[:300], web.output()[-3000:])
        expected[(method, template, str(status))] += 1
        return body

    ids = []
    for n in range(CREATED):
        body = call(
            "POST",
            LEADS,
            LEADS,
            201,
            json.dumps({"name": f"Lead {n}", "email": "a@b.com"}).encode(),
        )
        ids.append(json.loads(body)["id"])
    for lead_id in ids:
        call("GET", f"/api/v1/leads/{lead_id}/score/", SCORE, 200)
    for _ in range(3):
        call("GET", "/api/v1/workflows/1/execute/", WORKFLOW, 200)
    for _ in range(2):
        call("GET", "/api/v1/workflows/1/execute/?fail=1", WORKFLOW, 500)
    for q in ("lead", "lead", "acme", "zz"):
        call("GET", f"/api/v1/search/?q={q}", SEARCH, 200)
    for _ in range(3):
        call("GET", "/api/v1/boom/", BOOM, 500)
    for n in range(7):
        call("GET", f"/no/such/route/{n}", "unmatched", 404)
    # The cardinality attack: a thousand distinct ids, one route.
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda n: call("GET", f"/api/v1/leads/{10_000 + n}/", DETAIL, 404), range(ATTACK)
            )
        )
    return expected


@pytest.fixture(scope="module")
def deployment(services: None) -> Iterator[Deployment]:
    """Worker (prefork, 2 children recycled every 2 tasks) and gunicorn -w 4 (each worker
    recycled every 150 requests), requests sent."""
    with _own_services() as own:
        yield from _deploy(own)


def _deploy(own: Services) -> Iterator[Deployment]:
    worker_port = free_port()
    env = own.env(CRM_OTEL_METRICS_TOKEN=TOKEN, CRM_OTEL_METRICS_PORT=str(worker_port))
    worker = start_worker(env, concurrency=2, max_tasks_per_child=2)
    try:
        # Recycled gunicorn workers: their counts must survive them.
        web_env = {**env, "GUNICORN_CMD_ARGS": "--max-requests 150 --max-requests-jitter 0"}
        web = start_web(web_env, server="gunicorn", workers=4)
        try:
            expected = _send(web)
            yield Deployment(web, worker, worker_port, expected)
        finally:
            web.stop()
    finally:
        worker.stop()


def test_every_scrape_reports_exact_totals(deployment: Deployment) -> None:
    """Once the last request is a second old, every scrape, whichever worker answers it,
    reports exactly the requests sent, by method, route template and status."""
    time.sleep(1.0)
    for _ in range(12):
        samples = _scrape(deployment.web.url + "/metrics")
        assert _requests(samples) == deployment.expected
        errors = sum(
            v for labels, v in samples["http_errors_total"] if labels["path"] != "/healthz"
        )
        assert errors == 5


def test_labels_are_templates_and_the_attack_makes_one_series(deployment: Deployment) -> None:
    """Every `path` is a route template or `unmatched`; 1,000 ids make one series."""
    samples = _scrape(deployment.web.url + "/metrics")
    paths = {labels["path"] for labels, _ in samples["http_requests_total"]}
    assert paths <= TEMPLATES
    detail = [
        (labels, v) for labels, v in samples["http_requests_total"] if labels["path"] == DETAIL
    ]
    assert len(detail) == 1 and detail[0][1] == ATTACK
    buckets = {labels["path"] for labels, _ in samples["http_request_duration_ms_bucket"]}
    assert buckets <= TEMPLATES


def test_business_database_and_cache_metrics(deployment: Deployment) -> None:
    """Workflow runs and action failures, searches, lead scores, queries and cache lookups
    are recorded from the real app."""
    samples = _scrape(deployment.web.url + "/metrics")
    runs = {labels["status"]: v for labels, v in samples["workflow_runs_total"]}
    assert runs == {"completed": 3, "failed": 2}
    assert samples["workflow_action_failures_total"] == [({"action_type": "send_email"}, 2.0)]
    assert samples["search_query_latency_ms_count"] == [({"type": "lead"}, 4.0)]
    hit_rate = dict((labels["type"], v) for labels, v in samples["search_cache_hit_rate"])
    assert hit_rate == {"lead": 0.25}  # the second "lead" search came from the cache
    assert samples["lead_score_calculation_duration_ms_count"][0][1] >= CREATED
    selects = [
        v for labels, v in samples["db_query_duration_ms_count"] if labels["query_type"] == "select"
    ]
    assert selects and selects[0] >= ATTACK
    assert "cache_evictions_total" in samples


def test_every_designed_family_is_present(deployment: Deployment) -> None:
    """Between the web endpoint and the worker's port, all 25 families of docs/design.md and
    the process metrics have samples."""
    web = _scrape(deployment.web.url + "/metrics")
    worker = _scrape(f"http://127.0.0.1:{deployment.worker_port}/metrics")
    present = {
        name.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum")
        for name in (*web, *worker)
    }
    missing = (
        DESIGN_FAMILIES | {"process_resident_memory_bytes", "process_cpu_seconds_total"}
    ) - present
    assert not missing, f"missing families: {sorted(missing)}"


def test_celery_totals_exact_across_prefork_children(deployment: Deployment) -> None:
    """Tasks run by pool children (recycled every 2 tasks) are counted exactly on the worker's
    port, and the web endpoint does not count them (no double counting across targets)."""
    url = f"http://127.0.0.1:{deployment.worker_port}/metrics"
    deadline = time.monotonic() + 30
    while True:
        samples = _scrape(url)
        done = {
            (labels["task"], labels["status"]): v
            for labels, v in samples.get("celery_tasks_total", [])
        }
        if done.get((TASK, "success"), 0) >= CREATED or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert done == {(TASK, "success"): CREATED}, deployment.worker.output()[-6000:]
    for _ in range(5):
        samples = _scrape(url)
        assert samples["celery_tasks_total"] == [
            ({"task": TASK, "status": "success"}, float(CREATED))
        ]
        assert samples["celery_task_duration_seconds_count"] == [({"task": TASK}, float(CREATED))]
    assert {labels["queue"] for labels, _ in samples["celery_queue_length_gauge"]} == {"celery"}
    assert "celery_tasks_total" not in _scrape(deployment.web.url + "/metrics")


def test_the_token_protects_both_endpoints(deployment: Deployment) -> None:
    """Without the bearer token, or with a wrong one, the metrics path and port answer 401."""
    for url in (
        deployment.web.url + "/metrics",
        f"http://127.0.0.1:{deployment.worker_port}/metrics",
    ):
        for headers in (None, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            status, _, body = get(url, headers=headers)
            assert status == 401, (url, headers)
            assert TOKEN.encode() not in body
        assert get(url, headers=AUTH)[0] == 200


@pytest.mark.skipif(
    find_binary("prometheus") is None, reason="the prometheus binary is not installed"
)
def test_real_prometheus_agrees_with_the_counts_sent(deployment: Deployment) -> None:
    """A real Prometheus scraping the web endpoint and the worker's port every second sees
    exactly the requests and tasks sent."""
    targets = [deployment.web.url.removeprefix("http://"), f"127.0.0.1:{deployment.worker_port}"]
    total = sum(deployment.expected.values())
    with PrometheusServer(targets, bearer_token=TOKEN) as prometheus:
        prometheus.wait_until('sum(up{job="crm-backend"})', lambda r: r and r[0]["value"][1] == "2")
        rows = prometheus.wait_until(
            'sum(http_requests_total{path!="/healthz"})',
            lambda r: r and float(r[0]["value"][1]) == total,
            timeout=30,
        )
        assert float(rows[0]["value"][1]) == total
        rows = prometheus.query(f'sum(http_requests_total{{path="{DETAIL}"}})')
        assert float(rows[0]["value"][1]) == ATTACK
        assert len(prometheus.query(f'http_requests_total{{path="{DETAIL}"}}')) == 1
        rows = prometheus.wait_until(
            "sum(celery_tasks_total)",
            lambda r: r and float(r[0]["value"][1]) == CREATED,
            timeout=30,
        )
        assert float(rows[0]["value"][1]) == CREATED


def test_a_taken_worker_port_is_one_line_and_tasks_still_run(services: None) -> None:
    """With the metrics port already bound, the worker says so once and still runs tasks."""
    with socket.socket() as taken, _own_services() as own:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = own.env(CRM_OTEL_METRICS_PORT=str(port))
        worker = start_worker(env, concurrency=1)
        try:
            web = start_web(env)
            try:
                status, _, _ = get(
                    web.url + LEADS,
                    data=b'{"name": "P"}',
                    headers={"Content-Type": "application/json"},
                )
                assert status == 201
                worker.wait_output("succeeded", timeout=30)
            finally:
                web.stop()
        finally:
            worker.stop()
        assert worker.output().count(f"metrics port 127.0.0.1:{port} is not available") == 1


def test_otlp_consumers_get_otel_names_units_and_buckets(services: None) -> None:
    """With OTEL_METRICS_EXPORTER=otlp the same metrics also go out over OTLP, under their
    OpenTelemetry names with proper units and the millisecond buckets."""
    from tests.blackbox._harness import OtlpReceiver

    receiver = OtlpReceiver()
    try:
        with _own_services() as own:
            env = own.env(
                OTEL_METRICS_EXPORTER="otlp",
                OTEL_METRIC_EXPORT_INTERVAL="300",
                OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            )
            web = start_web(env)
            try:
                for n in range(3):
                    assert get(web.url + f"/api/v1/leads/{n}/")[0] == 404

                def exported(r: OtlpReceiver) -> dict[str, object] | None:
                    metrics = {
                        m.name: m
                        for request in r.metric_requests()
                        for rm in request.resource_metrics
                        for sm in rm.scope_metrics
                        for m in sm.metrics
                    }
                    duration = metrics.get("crm.http.request.duration")
                    if duration is None or not duration.histogram.data_points:
                        return None
                    return metrics

                metrics = receiver.wait_for(exported, timeout=20)
            finally:
                web.stop()
    finally:
        receiver.close()
    duration = metrics["crm.http.request.duration"]
    assert duration.unit == "ms"
    assert list(duration.histogram.data_points[-1].explicit_bounds)[:4] == [5, 10, 25, 50]
    assert metrics["crm.http.requests"].unit == "{request}"
    assert not any(name.endswith("_milliseconds") for name in metrics)

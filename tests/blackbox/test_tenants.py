"""Cost by org end to end: 200 orgs with a skewed load through `gunicorn -w 2` and a Celery
worker, top N = 10, on real PostgreSQL and Redis."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from tests.blackbox._harness import (
    CrmProcess,
    OtlpReceiver,
    free_port,
    get,
    start_web,
    start_worker,
)
from tests.blackbox.test_metrics import _own_services, _scrape

pytestmark = pytest.mark.blackbox

ORGS = 200
REQUESTS = 1500
TOP_N = 10
TASK_ORG = "org-0"
TASKS = 2

Samples = dict[str, list[tuple[dict[str, str], float]]]


@dataclass
class Run:
    """The deployment, what each org sent, and the OTLP receiver of both services."""

    web: CrmProcess
    worker_url: str
    sent: Counter[str]
    receiver: OtlpReceiver


def _load() -> list[str]:
    """A zipf-like sequence: org-0 about 17% of requests, org-199 about 0.1%."""
    rng = random.Random(20261129)
    weights = [1 / (rank + 1) for rank in range(ORGS)]
    return rng.choices([f"org-{rank}" for rank in range(ORGS)], weights, k=REQUESTS)


@pytest.fixture(scope="module")
def run(services: None) -> Iterator[Run]:
    """gunicorn -w 2 and a prefork worker, the skewed load and two task-sending requests."""
    receiver = OtlpReceiver()
    with _own_services() as own:
        worker_port = free_port()
        env = {
            **own.env(CRM_OTEL_TENANTS_TOP_N=str(TOP_N), CRM_OTEL_METRICS_PORT=str(worker_port)),
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        }
        worker = start_worker(env, concurrency=2)
        web = start_web(env, server="gunicorn", workers=2)
        try:
            sent: Counter[str] = Counter()

            def call(org: str) -> None:
                status, _, body = get(web.url + "/api/v1/leads/", headers={"X-Demo-Org": org})
                assert status == 200, body[:300]

            with ThreadPoolExecutor(4) as pool:
                load = _load()
                list(pool.map(call, load))
            sent.update(load)
            for n in range(TASKS):
                status, _, body = get(
                    web.url + "/api/v1/leads/",
                    data=json.dumps({"name": f"Lead {n}", "email": "a@b.com"}).encode(),
                    headers={"Content-Type": "application/json", "X-Demo-Org": TASK_ORG},
                )
                assert status == 201, body[:300]
                sent[TASK_ORG] += 1
            worker.wait_output("succeeded", timeout=30)
            yield Run(web, f"http://127.0.0.1:{worker_port}/metrics", sent, receiver)
        finally:
            web.stop()
            worker.stop()
            receiver.close()


def _by_org(samples: Samples, name: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for labels, value in samples.get(name, []):
        out[labels["org"]] = out.get(labels["org"], 0.0) + value
    return out


def _total(samples: Samples, name: str) -> float:
    return sum(value for _, value in samples.get(name, []))


def test_heavy_orgs_are_exact_and_the_rest_is_other(run: Run) -> None:
    """Ten orgs are named (the busiest by request time), among them the five that sent
    most, with exactly the requests they sent; no named org shows more than it sent."""
    time.sleep(1.2)
    requests = _by_org(_scrape(run.web.url + "/metrics", None), "tenant_requests_total")
    named = set(requests) - {"other", "none"}
    assert len(named) == TOP_N, requests
    heaviest = [org for org, _ in run.sent.most_common(5)]
    for org in heaviest:
        assert requests[org] == run.sent[org], (org, requests[org], run.sent[org])
    assert all(requests[org] <= run.sent[org] for org in named)


def test_sums_over_org_equal_the_totals(run: Run) -> None:
    """On every scrape (either gunicorn worker answers), each tenant family sums to its
    untagged total, and no org's series goes down from one scrape to the next."""
    time.sleep(1.2)
    previous: dict[str, float] = {}
    for _ in range(6):
        samples = _scrape(run.web.url + "/metrics", None)
        assert _total(samples, "tenant_requests_total") == _total(samples, "http_requests_total")
        assert _total(samples, "tenant_request_seconds_total") == pytest.approx(
            _total(samples, "http_request_duration_ms_sum") / 1000, rel=1e-9
        )
        assert _total(samples, "tenant_db_queries_total") == _total(
            samples, "db_query_duration_ms_count"
        )
        assert _total(samples, "tenant_db_seconds_total") == pytest.approx(
            _total(samples, "db_query_duration_ms_sum") / 1000, rel=1e-9
        )
        current = _by_org(samples, "tenant_requests_total")
        assert all(current.get(org, 0.0) >= value for org, value in previous.items())
        previous = current


def test_tasks_carry_the_org_of_the_request_that_sent_them(run: Run) -> None:
    """The worker's endpoint counts both tasks, and their run time, under the sender's org,
    and its tenant sums equal its Celery totals."""
    deadline = time.monotonic() + 15
    while True:
        samples = _scrape(run.worker_url, None)
        tasks = _by_org(samples, "tenant_tasks_total")
        if tasks.get(TASK_ORG) == TASKS or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert tasks.get(TASK_ORG) == TASKS, tasks
    assert _total(samples, "tenant_tasks_total") == _total(samples, "celery_tasks_total")
    assert _total(samples, "tenant_task_seconds_total") == pytest.approx(
        _total(samples, "celery_task_duration_seconds_sum"), rel=1e-9
    )
    assert _by_org(samples, "tenant_db_queries_total").get(TASK_ORG, 0) > 0


def test_telemetry_volume_is_attributed(run: Run) -> None:
    """Spans recorded and kept, log lines and bytes are counted by org; the kept spans of
    both services add up to the spans the OTLP receiver got."""
    time.sleep(1.5)
    web = _scrape(run.web.url + "/metrics", None)
    worker = _scrape(run.worker_url, None)
    heaviest = run.sent.most_common(1)[0][0]
    assert _by_org(web, "tenant_spans_recorded_total")[heaviest] >= run.sent[heaviest]
    assert _by_org(web, "tenant_log_lines_total")[heaviest] >= run.sent[heaviest]
    bytes_by_signal = Counter(
        {labels["signal"]: value for labels, value in web["tenant_telemetry_bytes_total"]}
    )
    assert bytes_by_signal["traces"] > 0 and bytes_by_signal["logs"] > 0
    kept = _total(web, "tenant_spans_kept_total") + _total(worker, "tenant_spans_kept_total")
    assert kept == len(run.receiver.spans())

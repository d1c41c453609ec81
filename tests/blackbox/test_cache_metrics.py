"""Cache metrics count the app's cache only: a real prefork worker whose broker and result
backend live in the cache's own Redis database counts its tasks' cache writes, and none of
Celery's result-backend or broker commands."""

from __future__ import annotations

import json
import time

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.blackbox._harness import (
    REDIS_URL,
    crm_env,
    free_port,
    get,
    running,
    start_web,
    start_worker,
)

pytestmark = pytest.mark.blackbox


def _samples(url: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    status, _, body = get(url)
    assert status == 200, body[:300]
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
        if sample.name == name
    }


def test_result_backend_traffic_is_not_cache_operations(crm: None) -> None:
    """Tasks whose results Celery stores in the cache's Redis (GET before SET of
    `celery-task-meta-<id>`, PUBLISH) add no cache operation on the worker; the one cache
    write each `score_new_lead` makes is counted."""
    port = free_port()
    env = crm_env(None, OTEL_TRACES_EXPORTER="none", CELERY_RESULT_BACKEND=REDIS_URL)
    worker_env = {**env, "CRM_OTEL_METRICS_PORT": str(port)}
    metrics = f"http://127.0.0.1:{port}/metrics"
    with running(start_worker(worker_env)) as worker, running(start_web(env)) as web:
        for n in range(3):
            status, _, _ = get(
                web.url + "/api/v1/signin/",
                data=json.dumps({"email": f"user{n}@example.com"}).encode(),
                headers={"Content-Type": "application/json"},
            )
            assert status == 202
        for n in range(2):
            status, _, _ = get(
                web.url + "/api/v1/leads/",
                data=json.dumps({"name": f"Lead {n}"}).encode(),
                headers={"Content-Type": "application/json"},
            )
            assert status == 201
        deadline = time.monotonic() + 30
        while sum(_samples(metrics, "celery_tasks_total").values()) < 5:
            assert time.monotonic() < deadline, worker.output()[-4000:]
            time.sleep(0.3)
        time.sleep(1.2)  # past the staleness bound of the worker's merged counts
        operations = _samples(metrics, "cache_operations_total")
    results = redis.Redis.from_url(REDIS_URL).keys("celery-task-meta-*")
    assert len(results) == 5, "the result backend stored no results: nothing was tested"
    assert {k: v for k, v in operations.items() if v} == {
        (("operation", "set"), ("status", "ok")): 2.0
    }, f"cache operations counted on the worker: {operations}"

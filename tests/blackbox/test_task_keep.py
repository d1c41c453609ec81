"""A failed Celery task keeps the web request that enqueued it: gunicorn -w 2 and a prefork
worker in production, on real PostgreSQL and Redis, over OTLP."""

from __future__ import annotations

import random
import re
import time
from typing import Any

import pytest

from sampling import threshold_for
from sampling._threshold import RANDOMNESS_MASK
from semconv.attributes import SAMPLING_UPSTREAM_RELEASED
from tests.blackbox._harness import (
    OtlpReceiver,
    crm_env,
    free_port,
    get,
    running,
    seeded_trace_ids,
    start_web,
    start_worker,
)

pytestmark = pytest.mark.blackbox

RATIO = 0.1
THRESHOLD = threshold_for(RATIO)
ROUTE = "GET api/v1/leads/<int:pk>/sync/"
PRODUCER = "apply_async/leads.tasks.sync_lead"
CONSUMER = "run/leads.tasks.sync_lead"
STATUS_ERROR = 2


def _trace_ids(count: int, seed: int, baseline: bool | None = None) -> list[str]:
    return seeded_trace_ids(count, seed, THRESHOLD, baseline)


def _sync(url: str, trace_id: str, fail: bool) -> str:
    """Enqueue a sync task from a request continuing `trace_id` (unsampled upstream);
    returns the upstream span id the request's server span points to."""
    parent = f"{random.getrandbits(64) or 1:016x}"
    query = "?fail=1" if fail else ""
    status = get(
        f"{url}/api/v1/leads/1/sync/{query}", headers={"traceparent": f"00-{trace_id}-{parent}-00"}
    )[0]
    assert status == 202
    return parent


def _whole(spans: list[dict[str, Any]], upstream_parent: str) -> bool:
    """The trace has the server, producer and consumer spans, and no span misses its parent."""
    names = {s["name"] for s in spans}
    ids = {s["span_id"] for s in spans} | {upstream_parent}
    return {ROUTE, PRODUCER, CONSUMER} <= names and all(s["parent_span_id"] in ids for s in spans)


def _by_trace(receiver: OtlpReceiver) -> dict[str, list[dict[str, Any]]]:
    traces: dict[str, list[dict[str, Any]]] = {}
    for span in receiver.spans():
        traces.setdefault(span["trace_id"], []).append(span)
    return traces


def _metric(body: str, family: str, labels: str = "") -> float:
    """Sum of the series of `family` whose labels contain `labels`."""
    total = 0.0
    for match in re.finditer(rf"^{family}(?:\{{([^}}]*)\}})? (\S+)$", body, re.MULTILINE):
        if labels in (match.group(1) or ""):
            total += float(match.group(2))
    return total


def test_failed_tasks_keep_their_web_requests_whole(crm: None, receiver: OtlpReceiver) -> None:
    """Of 100 requests that enqueue a task, the 10 whose task fails arrive whole (server,
    producer, consumer spans, every parent present) though outside the baseline, and of the
    90 ok ones exactly the baseline arrive."""
    env = crm_env(receiver, CRM_OTEL_ENVIRONMENT="production", CRM_OTEL_SAMPLING_RATIO=str(RATIO))
    ok_ids = _trace_ids(90, seed=11)
    fail_ids = _trace_ids(10, seed=12, baseline=False)
    expected_ok = {t for t in ok_ids if int(t, 16) & RANDOMNESS_MASK >= THRESHOLD}
    assert 2 < len(expected_ok) < 25
    calls = [(t, False) for t in ok_ids] + [(t, True) for t in fail_ids]
    random.Random(13).shuffle(calls)
    parents: dict[str, str] = {}

    with (
        running(start_worker(env)) as worker,
        running(start_web(env, server="gunicorn", workers=2)) as web,
    ):
        for trace_id, fail in calls:
            parents[trace_id] = _sync(web.url, trace_id, fail)

        def arrived(r: OtlpReceiver) -> bool:
            traces = _by_trace(r)
            return all(_whole(traces.get(t, []), parents[t]) for t in fail_ids) and all(
                _whole(traces.get(t, []), parents[t]) for t in expected_ok
            )

        receiver.wait_for(arrived, timeout=60)
        time.sleep(1.5)  # anything sent wrongly would arrive by now
        body = get(web.url + "/metrics")[2].decode()
        assert worker.process.poll() is None

    traces = _by_trace(receiver)
    assert set(traces) == set(fail_ids) | expected_ok
    for trace_id in fail_ids:
        [consumer] = [s for s in traces[trace_id] if s["name"] == CONSUMER]
        assert consumer["status_code"] == STATUS_ERROR
        assert SAMPLING_UPSTREAM_RELEASED not in consumer["attributes"]
        [server] = [s for s in traces[trace_id] if s["name"] == ROUTE]
        assert server["parent_span_id"] == parents[trace_id]
    assert _metric(body, "crm_otel_sampling_held_traces_total", 'outcome="kept"') == 10


def test_without_a_worker_the_hold_stays_capped_and_late_failures_say_so(
    crm: None, receiver: OtlpReceiver
) -> None:
    """With no worker running, held spans stay within their cap (overflow counted) and
    expire; a worker started later runs the failing tasks, whose consumer spans say the
    web part was released, counted on the worker's metrics."""
    cap = 15
    web_env = crm_env(
        receiver,
        CRM_OTEL_ENVIRONMENT="production",
        CRM_OTEL_SAMPLING_RATIO="0",
        CRM_OTEL_SAMPLING_HOLD_MS="2000",
        CRM_OTEL_SAMPLING_HOLD_MAX_SPANS=str(cap),
    )
    fail_ids = _trace_ids(4, seed=21)
    ok_ids = _trace_ids(16, seed=22)
    with running(start_web(web_env)) as web:
        for trace_id in ok_ids + fail_ids:
            _sync(web.url, trace_id, fail=trace_id in fail_ids)
        body = get(web.url + "/metrics")[2].decode()
        held = _metric(body, "crm_otel_sampling_spans_held")
        assert 0 < held <= cap, body
        assert _metric(body, "crm_otel_sampling_held_traces_total", 'outcome="overflow"') > 0

        deadline = time.monotonic() + 15
        while _metric(body, "crm_otel_sampling_spans_held") and time.monotonic() < deadline:
            time.sleep(0.5)
            body = get(web.url + "/metrics")[2].decode()
        assert _metric(body, "crm_otel_sampling_spans_held") == 0
        outcomes = {
            outcome: _metric(body, "crm_otel_sampling_held_traces_total", f'outcome="{outcome}"')
            for outcome in ("kept", "expired", "overflow")
        }
        assert outcomes["kept"] == 0 and outcomes["expired"] + outcomes["overflow"] == 20

        port = free_port()
        worker_env = {
            **web_env,
            "CRM_OTEL_SAMPLING_RATIO": "0",
            "CRM_OTEL_METRICS_PORT": str(port),
        }
        with running(start_worker(worker_env)):

            def failed_tasks(r: OtlpReceiver) -> list[dict[str, Any]]:
                return [s for s in r.spans() if s["name"] == CONSUMER]

            receiver.wait_for(lambda r: len(failed_tasks(r)) == len(fail_ids), timeout=60)
            worker_body = get(f"http://127.0.0.1:{port}/metrics")[2].decode()
            deadline = time.monotonic() + 10
            while (
                _metric(worker_body, "crm_otel_sampling_upstream_released_total") < len(fail_ids)
                and time.monotonic() < deadline
            ):
                time.sleep(0.5)
                worker_body = get(f"http://127.0.0.1:{port}/metrics")[2].decode()

    consumers = failed_tasks(receiver)
    assert {s["trace_id"] for s in consumers} == set(fail_ids)
    assert all(s["attributes"].get(SAMPLING_UPSTREAM_RELEASED) is True for s in consumers)
    assert all(s["status_code"] == STATUS_ERROR for s in consumers)
    # The web part is gone for good: no server or producer span of these traces.
    assert {s["name"] for s in receiver.spans()} == {CONSUMER} | _task_children(receiver)
    assert _metric(worker_body, "crm_otel_sampling_upstream_released_total") == len(fail_ids)


def _task_children(receiver: OtlpReceiver) -> set[str]:
    """Names of spans under the consumer spans (the task's own queries)."""
    consumers = {s["span_id"] for s in receiver.spans() if s["name"] == CONSUMER}
    return {s["name"] for s in receiver.spans() if s["parent_span_id"] in consumers}


def test_redis_down_for_signals_never_slows_a_request(crm: None, receiver: OtlpReceiver) -> None:
    """With the keep-signal Redis unreachable (an address that never answers, so each round
    waits out its connect timeout), requests that enqueue tasks answer as fast as ever, and
    the failed rounds are counted."""
    env = crm_env(
        receiver,
        CRM_OTEL_ENVIRONMENT="production",
        CRM_OTEL_SAMPLING_RATIO="0",
        CRM_OTEL_SAMPLING_RELAY_REDIS_URL="redis://10.255.255.1:6379/0",
    )
    with running(start_web(env)) as web:
        _sync(web.url, _trace_ids(1, seed=30)[0], fail=False)  # the view's first call warms up
        slowest = 0.0
        for trace_id in _trace_ids(10, seed=31):
            started = time.monotonic()
            _sync(web.url, trace_id, fail=False)
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.1)
        assert slowest < 0.5
        deadline = time.monotonic() + 10
        body = ""
        while time.monotonic() < deadline:
            body = get(web.url + "/metrics")[2].decode()
            if _metric(body, "crm_otel_sampling_relay_errors_total") > 0:
                break
            time.sleep(0.5)
        assert _metric(body, "crm_otel_sampling_relay_errors_total") > 0
        assert get(web.url + "/healthz")[0] == 200

"""ASGI and preloaded WSGI: the example CRM under `opentelemetry-instrument uvicorn
crm.asgi:application --workers 2` (workers spawned, not forked) and `gunicorn --preload`
gets the same server spans, access lines, correlation ids and exact metrics as gunicorn."""

from __future__ import annotations

import http.client
import json
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from crm_otel.metrics._store import GroupStore
from tests.blackbox._harness import (
    REDIS_URL,
    CrmProcess,
    OtlpReceiver,
    crm_env,
    get,
    running,
    start_web,
)

pytestmark = pytest.mark.blackbox

SERVER, PRODUCER, STATUS_ERROR = 2, 4, 2  # OTLP SpanKind values, Status.STATUS_CODE_ERROR
LEADS = "/api/v1/leads/"
SEARCH = "api/v1/search/"
HEALTHZ = "/healthz"  # polled by the harness until the server answers: not counted here


@dataclass(frozen=True)
class Call:
    """One request, what it must answer and the route it must be labelled with."""

    correlation_id: str
    method: str
    path: str
    status: int
    route: str | None  # Django's route (`api/v1/leads/<int:pk>/`); None when none matches
    data: bytes | None = None

    @property
    def label(self) -> tuple[str, str, str]:
        path = "/" + self.route if self.route is not None else "unmatched"
        return (self.method, path, str(self.status))


def _calls(prefix: str) -> list[Call]:
    """A mix over several routes, all with a user and an org: creates (each sends a Celery
    task), reads, cache-backed searches, slow requests, two 404s and two 500s."""
    calls: list[Call] = []

    def add(method: str, path: str, status: int, route: str | None, data: bytes | None = None):
        calls.append(Call(f"{prefix}-{len(calls)}", method, path, status, route, data))

    for n in range(3):
        add("POST", LEADS, 201, LEADS[1:], json.dumps({"name": f"L{n}"}).encode())
    for _ in range(4):
        add("GET", LEADS, 200, LEADS[1:])
    for q in ("l", "l", "acme", "zz"):
        add("GET", f"/api/v1/search/?q={q}", 200, SEARCH)
    for _ in range(6):
        add("GET", "/api/v1/slow/?ms=40", 200, "api/v1/slow/")
    add("GET", "/api/v1/leads/987654/", 404, "api/v1/leads/<int:pk>/")
    add("GET", "/no/such/route/", 404, None)
    for _ in range(2):
        add("GET", "/api/v1/boom/", 500, "api/v1/boom/")
    return calls


def _send(web: CrmProcess, calls: list[Call]) -> None:
    """Send every call, six at a time; each must answer its status and echo its id."""

    def one(call: Call) -> None:
        headers = {
            "X-Correlation-ID": call.correlation_id,
            "X-Demo-User": "alice",
            "X-Demo-Org": "org-7",
        }
        if call.data is not None:
            headers["Content-Type"] = "application/json"
        status, response_headers, body = get(web.url + call.path, headers, call.data)
        assert status == call.status, (call, body[:300], web.output()[-3000:])
        assert response_headers.get("X-Correlation-ID") == call.correlation_id

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(one, calls))


def _server_spans(receiver: OtlpReceiver, ids: set[str]) -> dict[str, dict[str, Any]]:
    """The server span of every correlation id in `ids`, once all have arrived."""

    def arrived(r: OtlpReceiver) -> dict[str, dict[str, Any]] | None:
        found: dict[str, list[dict[str, Any]]] = {}
        for span in r.spans():
            cid = span["attributes"].get("crm.correlation_id")
            if span["kind"] == SERVER and cid in ids:
                found.setdefault(cid, []).append(span)
        if set(found) != ids:
            return None
        duplicated = {cid: len(spans) for cid, spans in found.items() if len(spans) != 1}
        assert not duplicated, f"more than one server span: {duplicated}"
        return {cid: spans[0] for cid, spans in found.items()}

    arrived.__name__ = f"{len(ids)} server spans"
    return receiver.wait_for(arrived, timeout=30)  # type: ignore[no-any-return]


def _check_trace_tree(receiver: OtlpReceiver, calls: list[Call]) -> dict[str, dict[str, Any]]:
    """One server span per request, named by route with `http.route`, its PostgreSQL and
    Redis spans below it, the user and org on it; returns the spans by correlation id."""
    servers = _server_spans(receiver, {c.correlation_id for c in calls})
    spans = receiver.spans()
    by_id = {s["span_id"]: s for s in spans}
    for call in calls:
        span = servers[call.correlation_id]
        attrs = span["attributes"]
        want = f"{call.method} {call.route}" if call.route is not None else call.method
        assert span["name"] == want, (call, span["name"])
        assert attrs.get("http.route") == call.route, (call, attrs)
        assert attrs.get("http.status_code") == call.status
        if call.status >= 500:
            assert span["status_code"] == STATUS_ERROR, call
        if call.route is not None:  # who asked is known once a route matched
            assert attrs.get("crm.user.id") and attrs.get("crm.org.id") == "org-7", (call, attrs)
        trace = [s for s in spans if s["trace_id"] == span["trace_id"]]
        below = [
            s
            for s in trace
            if s["attributes"].get("db.system") in ("postgresql", "redis") or s["kind"] == PRODUCER
        ]
        systems = {s["attributes"].get("db.system", "celery") for s in below}
        if call.route is not None:
            assert "postgresql" in systems, f"no database span under {call}"
        if call.route == SEARCH:
            assert "redis" in systems, f"no Redis span under {call}"
        if call.method == "POST":
            assert "celery" in systems, f"no Celery producer span under {call}"
        for child in below:
            ancestor = child
            while ancestor["span_id"] != span["span_id"]:
                ancestor = by_id[ancestor["parent_span_id"]]
    return servers


def _log_lines(output: str, logger: str, ids: set[str]) -> dict[str, list[dict[str, Any]]]:
    """JSON lines of `logger` by correlation id, for the ids in `ids`; every line of the
    output must be JSON."""
    lines: dict[str, list[dict[str, Any]]] = {}
    for line in output.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"not a JSON line: {line[:300]!r}")
        if record.get("logger") == logger and record.get("correlation_id") in ids:
            lines.setdefault(record["correlation_id"], []).append(record)
    return lines


def _queued_task_correlation_ids() -> list[str]:
    """The correlation ids in the headers of the Celery messages waiting in the broker."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        messages = [json.loads(m) for m in client.lrange("celery", 0, -1)]
    finally:
        client.close()
    return [m["headers"].get("crm_correlation_id") for m in messages]


def _counts(body: bytes) -> Counter[tuple[str, str, str]]:
    """`http_requests_total` of a scrape by (method, path, status), health checks left out."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "http_requests_total" and labels["path"] != HEALTHZ:
                counts[(labels["method"], labels["path"], labels["status"])] += int(sample.value)
    return counts


def _exact_on_every_scrape(web: CrmProcess, calls: list[Call], scrapes: int) -> None:
    """Once the last request is a second old, every scrape counts exactly the calls."""
    expected = Counter(call.label for call in calls)
    time.sleep(1.0)
    for _ in range(scrapes):
        status, _, body = get(web.url + "/metrics")
        assert status == 200, body[:300]
        assert _counts(body) == expected
        assert sum(_counts(body).values()) == len(calls)


def _connection_to_each_worker(
    web: CrmProcess, receiver: OtlpReceiver, workers: int
) -> dict[str, http.client.HTTPConnection]:
    """A keep-alive connection to each worker (by `service.instance.id`), found by sending
    a traced health check on new connections until every worker has answered one."""
    host, port = web.url.removeprefix("http://").split(":")
    pinned: dict[str, http.client.HTTPConnection] = {}
    for attempt in range(10):
        probes = {
            f"probe-{attempt}-{n}": http.client.HTTPConnection(host, int(port), timeout=10)
            for n in range(6)
        }
        for cid, connection in probes.items():
            connection.request("GET", HEALTHZ, headers={"X-Correlation-ID": cid})
        for connection in probes.values():
            response = connection.getresponse()
            response.read()
            assert response.status == 200
        for cid, span in _server_spans(receiver, set(probes)).items():
            instance = span["resource"]["service.instance.id"]
            if instance in pinned:
                probes[cid].close()
            else:
                pinned[instance] = probes[cid]
        if len(pinned) == workers:
            return pinned
    raise AssertionError(f"only {len(pinned)} of {workers} workers answered 60 connections")


def test_uvicorn_workers_trace_log_and_count_every_request(
    crm: None, receiver: OtlpReceiver
) -> None:
    """Under uvicorn with two spawned workers, each request has one server span named by
    its route (DB, Redis and Celery producer spans below it, correlation id echoed and on
    it), one access line with its trace and span ids, the view's lines and sent tasks carry
    its ids, and every scrape, whichever worker answers, counts every request."""
    calls = _calls("asgi")
    env = crm_env(receiver)
    with running(start_web(env, server="uvicorn", workers=2)) as web:
        _send(web, calls)
        servers = _check_trace_tree(receiver, calls)
        for burst in range(10):
            # The kernel hands connections to whichever worker accepts first: sometimes
            # one worker takes a whole burst, so more follow until both have served.
            if len({s["resource"]["service.instance.id"] for s in servers.values()}) == 2:
                break
            more = [Call(f"asgi-{burst}-{n}", "GET", LEADS, 200, LEADS[1:]) for n in range(12)]
            _send(web, more)
            calls += more
            servers = _check_trace_tree(receiver, calls)
        instances = {s["resource"]["service.instance.id"] for s in servers.values()}
        assert len(instances) == 2, "the requests did not reach both workers"
        _exact_on_every_scrape(web, calls, scrapes=4)
        # Each worker answers scrapes over its own connection: each must count them all.
        expected = Counter(call.label for call in calls)
        for connection in _connection_to_each_worker(web, receiver, workers=2).values():
            for _ in range(4):
                connection.request("GET", "/metrics")
                response = connection.getresponse()
                assert response.status == 200
                assert _counts(response.read()) == expected
            connection.close()
        ids = {c.correlation_id for c in calls}
        access = _log_lines(web.output(), "crm.access", ids)
        created = _log_lines(web.output(), "crm.leads", ids)
        (group,) = [p for p in Path(env["CRM_OTEL_METRICS_DIR"]).iterdir() if p.is_dir()]
        files = [p.name for p in group.iterdir() if p.name.startswith("p-")]
    # The supervisor and the two workers; multiprocessing's resource tracker runs uninstrumented.
    assert len(files) == 3, files
    assert {cid: len(lines) for cid, lines in access.items()} == {cid: 1 for cid in ids}
    for call in calls:
        (line,) = access[call.correlation_id]
        span = servers[call.correlation_id]
        assert (line["trace_id"], line["span_id"]) == (span["trace_id"], span["span_id"])
        assert line["status_code"] == call.status
        assert line["path"] == (call.label[1] if call.route is not None else "/no/such/route/")
    # The view's own line, and the task it sent, carry the request's ids.
    posts = {c.correlation_id for c in calls if c.method == "POST"}
    assert set(created) == posts
    for cid in posts:
        assert [line["trace_id"] for line in created[cid]] == [servers[cid]["trace_id"]]
    assert sorted(_queued_task_correlation_ids()) == sorted(posts)


def test_uvicorn_worker_exit_flushes_spans_and_final_counts(
    crm: None, receiver: OtlpReceiver
) -> None:
    """Stopping uvicorn while requests are still arriving: each worker, ended by SIGTERM
    after its graceful shutdown, exports its buffered spans and writes its last counts, so
    the server's state files hold exactly the requests answered."""
    env = crm_env(
        receiver,
        OTEL_BSP_SCHEDULE_DELAY="60000",
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE="8000",
        CRM_OTEL_METRICS_WRITE_INTERVAL_MS="1000",
    )
    web = start_web(env, server="uvicorn", workers=2)
    answered: list[str] = []
    stop = threading.Event()

    def load(worker: int) -> None:
        n = 0
        while not stop.is_set():
            cid = f"exit-{worker}-{n}"
            n += 1
            try:
                status, _, _ = get(web.url + "/api/v1/leads/", {"X-Correlation-ID": cid}, timeout=5)
            except OSError:
                return  # the server has stopped listening
            if status == 200:
                answered.append(cid)

    clients = [threading.Thread(target=load, args=(i,)) for i in range(3)]
    with running(web):
        for client in clients:
            client.start()
        time.sleep(1.5)
        assert answered
        assert not [s for s in receiver.spans() if s["kind"] == SERVER], "exported too early"
        web.stop()
    stop.set()
    for client in clients:
        client.join(30)
    _server_spans(receiver, set(answered))
    (group,) = [p for p in Path(env["CRM_OTEL_METRICS_DIR"]).iterdir() if p.is_dir()]
    families = GroupStore(str(group)).collect().families
    counted = sum(
        value
        for labels, value in families["http_requests_total"].items()
        if dict(labels)["path"] != HEALTHZ
    )
    assert counted == len(answered)


def test_uvicorn_restarted_workers_keep_counting_in_the_same_totals(crm: None) -> None:
    """After SIGHUP makes uvicorn replace both workers with newly spawned ones, the new
    workers count into the same totals and the replaced workers' counts are kept."""
    web = start_web(crm_env(None, OTEL_TRACES_EXPORTER="none"), server="uvicorn", workers=2)
    with running(web):
        before = [Call(f"hup-{n}", "GET", LEADS, 200, LEADS[1:]) for n in range(12)]
        _send(web, before)
        _exact_on_every_scrape(web, before, scrapes=3)
        web.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while web.output().count("Terminated child process") < 2:
            assert time.monotonic() < deadline, web.output()[-3000:]
            time.sleep(0.2)
        after = [Call(f"hup-after-{n}", "GET", LEADS, 200, LEADS[1:]) for n in range(6)]
        _send(web, after)
        _exact_on_every_scrape(web, before + after, scrapes=6)


def test_gunicorn_preload_traces_and_exact_metrics(crm: None, receiver: OtlpReceiver) -> None:
    """With `gunicorn --preload` (Django loaded in the master, then forked) requests still
    get their server spans, DB spans and correlation ids, and scrapes count them exactly."""
    calls = _calls("preload")
    with running(start_web(crm_env(receiver), server="gunicorn-preload", workers=2)) as web:
        _send(web, calls)
        _check_trace_tree(receiver, calls)
        _exact_on_every_scrape(web, calls, scrapes=6)

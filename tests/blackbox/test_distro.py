"""The example CRM under `opentelemetry-instrument`: the trace tree, end to end, over OTLP."""

from __future__ import annotations

import json
import time

import pytest

from tests.blackbox._harness import (
    OtlpReceiver,
    crm_env,
    get,
    running,
    server_span,
    start_web,
    start_worker,
)

pytestmark = pytest.mark.blackbox

SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5  # OTLP SpanKind values
STATUS_ERROR = 2
REDIS_COMMANDS = {
    "BRPOP",
    "LLEN",
    "EVALSHA",
    "PING",
    "PUBLISH",
    "LPUSH",
    "SUBSCRIBE",
    "MULTI",
    "EXEC",
}


def _trace(receiver: OtlpReceiver, trace_id: str) -> list[dict]:
    return [s for s in receiver.spans() if s["trace_id"] == trace_id]


def _children(spans: list[dict], parent: dict) -> list[dict]:
    return [s for s in spans if s["parent_span_id"] == parent["span_id"]]


def test_request_trace_tree_reaches_the_worker(crm: None, receiver: OtlpReceiver) -> None:
    """A POST served by runserver yields server → psycopg2 and Redis spans, and a Celery
    producer span whose consumer span in the worker process shares the trace."""
    web_env = crm_env(receiver, OTEL_RESOURCE_ATTRIBUTES="crm.test.process=web")
    worker_env = crm_env(receiver, OTEL_RESOURCE_ATTRIBUTES="crm.test.process=worker")
    with running(start_worker(worker_env)), running(start_web(web_env)) as web:
        status, headers, body = get(
            web.url + "/api/v1/leads/",
            data=json.dumps(
                {"name": "Ada", "email": "ada@example.com", "company": "Acme"}
            ).encode(),
            headers={
                "X-Correlation-ID": "req-0001",
                "X-Demo-User": "alice",
                "X-Demo-Org": "org-7",
                "Content-Type": "application/json",
            },
        )
        assert status == 201, body
        assert headers["X-Correlation-ID"] == "req-0001"
        lead_id = json.loads(body)["id"]
        assert (
            get(
                web.url + f"/api/v1/leads/{lead_id}/score/",
                headers={"X-Correlation-ID": "req-0002"},
            )[0]
            == 200
        )

        server = server_span(receiver, "req-0001", "POST api/v1/leads/")
        assert server["kind"] == SERVER
        assert server["attributes"]["http.route"] == "api/v1/leads/"
        assert server["attributes"]["crm.user.id"]
        assert server["attributes"]["crm.org.id"] == "org-7"
        assert server["resource"]["service.name"] == "crm-backend"
        assert server["resource"]["deployment.environment.name"] == "development"

        def consumer_arrived(r: OtlpReceiver) -> list[dict]:
            return [s for s in _trace(r, server["trace_id"]) if s["kind"] == CONSUMER]

        consumer_arrived(receiver) or receiver.wait_for(consumer_arrived)
        spans = _trace(receiver, server["trace_id"])

    children = _children(spans, server)
    sql = [s for s in children if s["attributes"].get("db.system") == "postgresql"]
    assert sql, f"no psycopg2 span under the server span: {[s['name'] for s in children]}"
    insert = next(s for s in sql if "INSERT" in s["attributes"].get("db.statement", ""))
    assert "Ada" not in json.dumps(insert["attributes"]) and "ada@example.com" not in json.dumps(
        insert["attributes"]
    )
    assert "%s" in insert["attributes"]["db.statement"]

    producer = next(s for s in spans if s["kind"] == PRODUCER)
    assert producer["name"] == "apply_async/leads.tasks.score_new_lead"
    assert producer["parent_span_id"] == server["span_id"]
    assert producer["resource"]["crm.test.process"] == "web"
    consumer = next(s for s in spans if s["kind"] == CONSUMER)
    assert consumer["name"] == "run/leads.tasks.score_new_lead"
    assert consumer["parent_span_id"] == producer["span_id"]
    assert consumer["resource"]["crm.test.process"] == "worker"
    assert consumer["attributes"]["crm.correlation_id"] == "req-0001"
    worker_sql = [
        s for s in _children(spans, consumer) if s["attributes"].get("db.system") == "postgresql"
    ]
    assert worker_sql, "the task's queries are not children of its consumer span"

    score_server = server_span(receiver, "req-0002", "GET api/v1/leads/<int:pk>/score/")
    score_trace = _trace(receiver, score_server["trace_id"])
    redis_spans = [s for s in score_trace if s["attributes"].get("db.system") == "redis"]
    assert redis_spans and all(s["parent_span_id"] == score_server["span_id"] for s in redis_spans)
    assert all(
        "lead-score" not in str(s["attributes"].get("db.statement", ""))
        or "?" in s["attributes"]["db.statement"]
        for s in redis_spans
    )


def test_workflow_span_events_and_errors(crm: None, receiver: OtlpReceiver) -> None:
    """`create_span` spans carry their action events, and an exception marks them and the
    server span as ERROR."""
    with running(start_web(crm_env(receiver))) as web:
        assert (
            get(web.url + "/api/v1/workflows/1/execute/", headers={"X-Correlation-ID": "wf-ok"})[0]
            == 200
        )
        assert (
            get(
                web.url + "/api/v1/workflows/1/execute/?fail=1",
                headers={"X-Correlation-ID": "wf-bad"},
            )[0]
            == 500
        )
        ok = server_span(receiver, "wf-ok", "GET api/v1/workflows/<int:pk>/execute/")
        bad = server_span(receiver, "wf-bad", "GET api/v1/workflows/<int:pk>/execute/")
        receiver.wait_for(
            lambda r: len([s for s in r.spans() if s["name"] == "workflow.execute"]) >= 2
        )

    workflow = next(s for s in _trace(receiver, ok["trace_id"]) if s["name"] == "workflow.execute")
    assert workflow["parent_span_id"] == ok["span_id"]
    assert workflow["attributes"]["workflow.name"] == "Qualify High-Value Leads"
    names = [name for name, _ in workflow["events"]]
    assert names == ["action.start", "action.complete"] * 4
    assert workflow["events"][0][1] == {"action.type": "update_field"}

    failed = next(s for s in _trace(receiver, bad["trace_id"]) if s["name"] == "workflow.execute")
    assert failed["status_code"] == STATUS_ERROR
    assert any(
        name == "exception" and attrs["exception.type"].endswith("WorkflowActionError")
        for name, attrs in failed["events"]
    )
    assert bad["status_code"] == STATUS_ERROR
    assert (
        bad["attributes"].get(
            "http.status_code", bad["attributes"].get("http.response.status_code")
        )
        == 500
    )


def test_gunicorn_workers_export_their_spans(crm: None, receiver: OtlpReceiver) -> None:
    """Under `gunicorn -w 2` every request's server span and its SQL spans arrive."""
    with running(start_web(crm_env(receiver), server="gunicorn", workers=2)) as web:
        ids = [f"gu-{i}" for i in range(12)]
        for cid in ids:
            assert get(web.url + "/api/v1/leads/", headers={"X-Correlation-ID": cid})[0] == 200
        servers = [server_span(receiver, cid, "GET api/v1/leads/") for cid in ids]
    for server in servers:
        assert server["attributes"]["http.route"] == "api/v1/leads/"
        sql = [
            s
            for s in _children(receiver.spans(), server)
            if s["attributes"].get("db.system") == "postgresql"
        ]
        assert sql, f"no SQL span for {server['attributes']['crm.correlation_id']}"


def test_no_task_span_lost_with_max_tasks_per_child(crm: None, receiver: OtlpReceiver) -> None:
    """With `--max-tasks-per-child 1` every task's consumer span still reaches the exporter."""
    env = crm_env(receiver, OTEL_BSP_SCHEDULE_DELAY="30000")  # only a flush can send them in time
    with (
        running(start_worker(env, concurrency=2, max_tasks_per_child=1)),
        running(start_web(crm_env(receiver))) as web,
    ):
        for i in range(10):
            status, _, _ = get(
                web.url + "/api/v1/leads/",
                data=json.dumps({"name": f"L{i}"}).encode(),
                headers={"Content-Type": "application/json"},
            )
            assert status == 201

        def ten_consumers(r: OtlpReceiver) -> bool:
            return len([s for s in r.spans() if s["kind"] == CONSUMER]) >= 10

        receiver.wait_for(ten_consumers, timeout=40)
    consumers = [s for s in receiver.spans() if s["kind"] == CONSUMER]
    assert len(consumers) == 10


def test_broker_polling_makes_no_traces(crm: None, receiver: OtlpReceiver) -> None:
    """A worker on a Redis broker exports no root spans of its own polling, idle for seconds,
    while the task a request sends it in the same run is exported."""
    worker_env = crm_env(
        receiver, OTEL_BSP_SCHEDULE_DELAY="100", OTEL_RESOURCE_ATTRIBUTES="crm.test.process=worker"
    )
    web_env = crm_env(receiver, OTEL_RESOURCE_ATTRIBUTES="crm.test.process=web")
    with running(start_worker(worker_env)) as worker, running(start_web(web_env)) as web:
        status, _, body = get(
            web.url + "/api/v1/leads/",
            data=json.dumps({"name": "Ada"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        assert status == 201, body

        def consumer_arrived(r: OtlpReceiver) -> list[dict]:
            return [s for s in r.spans() if s["kind"] == CONSUMER]

        receiver.wait_for(consumer_arrived)
        time.sleep(6)
        worker.stop()
    worker_spans = [s for s in receiver.spans() if s["resource"]["crm.test.process"] == "worker"]
    # Positive control: the worker's spans do reach the receiver.
    assert [s["name"] for s in worker_spans if s["kind"] == CONSUMER] == [
        "run/leads.tasks.score_new_lead"
    ]
    polling = [
        s
        for s in worker_spans
        if not s["parent_span_id"] and s["name"].split()[0] in REDIS_COMMANDS
    ]
    assert polling == []
    assert [s for s in worker_spans if not s["parent_span_id"]] == []


def test_missing_settings_module_is_loud_and_settings_survive(
    crm: None, receiver: OtlpReceiver
) -> None:
    """Without DJANGO_SETTINGS_MODULE at launch, one loud line appears, the app's own
    settings are used (it serves), and Django is instrumented once wsgi.py sets it."""
    env = crm_env(receiver, DJANGO_SETTINGS_MODULE="")
    with running(start_web(env, server="gunicorn", workers=1)) as web:
        assert get(web.url + "/api/v1/leads/", headers={"X-Correlation-ID": "nodsm"})[0] == 200
        server_span(receiver, "nodsm", "GET api/v1/leads/")
        output = web.output()
    assert output.count("DJANGO_SETTINGS_MODULE is not set at launch") == 1
    assert "ALLOWED_HOSTS" not in output


@pytest.mark.parametrize("endpoint", ["closed", "silent"])
def test_requests_succeed_while_otlp_endpoint_is_down(crm: None, endpoint: str) -> None:
    """With the OTLP endpoint refusing connections, or accepting and never answering,
    requests still succeed without waiting on the exporter."""
    silent = OtlpReceiver(respond=False)
    try:
        url = silent.endpoint if endpoint == "silent" else "http://127.0.0.1:9"
        env = crm_env(None, OTEL_EXPORTER_OTLP_ENDPOINT=url, OTEL_BSP_SCHEDULE_DELAY="50")
        with running(start_web(env)) as web:
            slowest = 0.0
            for _ in range(30):
                started = time.monotonic()
                assert get(web.url + "/api/v1/leads/", timeout=10)[0] == 200
                slowest = max(slowest, time.monotonic() - started)
            # A request blocked on the exporter would take its 10 s timeout.
            assert slowest < 5.0
    finally:
        silent.respond = True
        silent.close()


def test_sigterm_flushes_runserver(crm: None, receiver: OtlpReceiver) -> None:
    """runserver has no SIGTERM handler: crm-otel's flushes buffered spans before it dies."""
    env = crm_env(receiver, OTEL_BSP_SCHEDULE_DELAY="60000")
    web = start_web(env)
    with running(web):
        assert get(web.url + "/api/v1/leads/", headers={"X-Correlation-ID": "term-1"})[0] == 200
        time.sleep(0.5)
        assert not [
            s for s in receiver.spans() if s["attributes"].get("crm.correlation_id") == "term-1"
        ]
        web.stop()
    server_span(receiver, "term-1", "GET api/v1/leads/")


def test_bad_variable_reported_once_and_app_serves(crm: None, receiver: OtlpReceiver) -> None:
    """A bad CRM_OTEL_* value is reported in one line naming it, and the app still serves."""
    env = crm_env(receiver, CRM_OTEL_SAMPLING_RATIO="ten percent")
    with running(start_web(env, server="gunicorn", workers=2)) as web:
        for _ in range(4):
            assert get(web.url + "/api/v1/leads/")[0] == 200
        output = web.output()
    lines = [line for line in output.splitlines() if "CRM_OTEL_SAMPLING_RATIO" in line]
    assert len(lines) == 1, lines
    assert "ten percent" in lines[0] and "0 to 1" in lines[0]


def test_runserver_with_autoreloader(crm: None, receiver: OtlpReceiver) -> None:
    """runserver's autoreloader (a parent and a serving child) serves, traces, and fails
    nothing in the parent."""
    with running(start_web(crm_env(receiver), server="runserver-autoreload")) as web:
        assert get(web.url + "/api/v1/leads/", headers={"X-Correlation-ID": "reload-1"})[0] == 200
        server_span(receiver, "reload-1", "GET api/v1/leads/")
        output = web.output()
    assert "Traceback" not in output
    assert [s for s in receiver.spans() if s["attributes"].get("crm.correlation_id") == "reload-1"]


def test_metrics_scrapes_make_no_traces(crm: None, receiver: OtlpReceiver) -> None:
    """Scraping `/metrics` (once a second in production) creates no server span."""
    with running(start_web(crm_env(receiver))) as web:
        for _ in range(3):
            assert get(web.url + "/metrics")[0] == 200
        assert (
            get(web.url + "/api/v1/leads/", headers={"X-Correlation-ID": "after-scrape"})[0] == 200
        )
        server_span(receiver, "after-scrape", "GET api/v1/leads/")
    assert [s for s in receiver.spans() if s["kind"] == SERVER and s["name"] == "GET"] == []


@pytest.mark.parametrize("exporter", ["console", "none"])
def test_console_and_none_trace_exporters(crm: None, receiver: OtlpReceiver, exporter: str) -> None:
    """`OTEL_TRACES_EXPORTER=console` prints spans on stdout, `none` exports nothing; the
    app serves either way and no span reaches the OTLP endpoint, while the request's log
    record, carrying its trace id, does reach it."""
    env = crm_env(
        receiver,
        OTEL_TRACES_EXPORTER=exporter,
        OTEL_BSP_SCHEDULE_DELAY="100",
        OTEL_LOGS_EXPORTER="otlp",
    )
    with running(start_web(env)) as web:
        assert get(web.url + "/api/v1/leads/", headers={"X-Correlation-ID": "exp-1"})[0] == 200

        def access_record(r: OtlpReceiver) -> list[dict]:
            return [
                x
                for x in r.log_records()
                if x["attributes"].get("crm.correlation_id") == "exp-1"
                and str(x["body"]).startswith("GET")
            ]

        [record] = receiver.wait_for(access_record)
        time.sleep(1.0)
        web.stop()
        output = web.output()
    # Positive control: the request was traced, and this process exports to the receiver.
    assert record["trace_id"] != "0" * 32
    printed = '"name": "GET api/v1/leads/"' in output
    assert printed is (exporter == "console")
    assert receiver.spans() == []

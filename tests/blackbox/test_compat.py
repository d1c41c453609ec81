"""One row of the compatibility matrix: the installed wheel on a given Python, Django,
PostgreSQL driver and server gives the same traces, logs and metrics.

The row comes from the environment (noxfile.py sets it): `CRM_OTEL_TEST_SERVER`
(`gunicorn`, `gunicorn-preload` or `uvicorn`), `CRM_OTEL_TEST_DRIVER` (`psycopg2` or
`psycopg`) and `CRM_OTEL_TEST_DJANGO` (the Django series the venv must hold). Unset, it
runs gunicorn with whatever driver the CRM's venv has.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Any

import pytest

from tests.blackbox._harness import (
    EXAMPLE,
    PYTHON,
    OtlpReceiver,
    crm_env,
    get,
    json_lines,
    running,
    start_web,
    start_worker,
)

pytestmark = pytest.mark.blackbox

SERVER, PRODUCER, CONSUMER = 2, 4, 5  # OTLP SpanKind values
SECRET_NAME = "Zelda-Quux-7731"
"""A value sent as a SQL parameter: it must never reach a span."""
DRIVER_SCOPES = {
    "psycopg2": "opentelemetry.instrumentation.psycopg2",
    "psycopg": "opentelemetry.instrumentation.psycopg",
}


def _crm_venv_facts() -> dict[str, Any]:
    """The Django version and PostgreSQL driver the CRM's own venv uses."""
    script = (
        "import json, django\n"
        "try:\n import psycopg; driver = 'psycopg'\n"
        "except ImportError:\n driver = 'psycopg2'\n"
        "print(json.dumps({'django': django.get_version(), 'driver': driver}))\n"
    )
    out = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout))


def _api_user() -> dict[str, Any]:
    """An API user in an org, and a JWT for it (the example's management command)."""
    result = subprocess.run(
        [PYTHON, "manage.py", "create_api_user", "compat-api", "--org", "Compat Org"],
        cwd=EXAMPLE,
        env=crm_env(None),
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(result.stdout))


def _requests_total(url: str) -> float:
    status, _, body = get(url + "/metrics")
    assert status == 200, body[:300]
    total = 0.0
    for line in body.decode().splitlines():
        # start_web's readiness probes hit /healthz: not part of what the test sent.
        if line.startswith("http_requests_total{") and 'path="/healthz"' not in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_row_traces_logs_and_metrics(crm: None, receiver: OtlpReceiver) -> None:
    """Under this row's server and driver: one server span per request named by route,
    SQL spans from the row's driver under it without parameter values, a task's consumer
    span in the request's trace, one JSON access line per request with its trace id and
    correlation id, a DRF JWT user's id and org id on the span and the access line, and
    `http_requests_total` exact across two workers."""
    facts = _crm_venv_facts()
    driver = os.environ.get("CRM_OTEL_TEST_DRIVER", facts["driver"])
    assert facts["driver"] == driver, facts
    django_series = os.environ.get("CRM_OTEL_TEST_DJANGO")
    if django_series:
        assert facts["django"].startswith(django_series + "."), facts
    server = os.environ.get("CRM_OTEL_TEST_SERVER", "gunicorn")

    api_user = _api_user()
    web_env = crm_env(
        receiver,
        OTEL_RESOURCE_ATTRIBUTES="crm.test.process=web",
        CRM_OTEL_ORG_ATTRIBUTE="request.org",
    )
    worker_env = crm_env(receiver, OTEL_RESOURCE_ATTRIBUTES="crm.test.process=worker")
    sent: list[tuple[str, str, int]] = []  # (correlation id, route, status)
    with (
        running(start_worker(worker_env)),
        running(start_web(web_env, server=server, workers=2)) as web,
    ):
        status, headers, body = get(
            web.url + "/api/v1/leads/",
            data=json.dumps({"name": SECRET_NAME, "email": "z@example.com"}).encode(),
            headers={"X-Correlation-ID": "compat-create", "Content-Type": "application/json"},
        )
        assert status == 201, body
        assert headers["X-Correlation-ID"] == "compat-create"
        sent.append(("compat-create", "api/v1/leads/", 201))
        lead_id = json.loads(body)["id"]
        for i in range(12):
            cid = f"compat-detail-{i}"
            assert get(web.url + f"/api/v1/leads/{lead_id}/", {"X-Correlation-ID": cid})[0] == 200
            sent.append((cid, "api/v1/leads/<int:pk>/", 200))
        assert get(web.url + "/api/v1/boom/", {"X-Correlation-ID": "compat-boom"})[0] == 500
        sent.append(("compat-boom", "api/v1/boom/", 500))
        assert get(web.url + "/no/such/page", {"X-Correlation-ID": "compat-404"})[0] == 404
        sent.append(("compat-404", "", 404))
        jwt = {"Authorization": f"Bearer {api_user['access']}", "X-Correlation-ID": "compat-jwt"}
        status, _, body = get(web.url + "/api/v2/leads/", jwt)
        assert status == 200, body
        sent.append(("compat-jwt", "api/v2/leads/", 200))

        def all_servers(r: OtlpReceiver) -> dict[str, dict[str, Any]] | None:
            found = {
                s["attributes"].get("crm.correlation_id"): s
                for s in r.spans()
                if s["kind"] == SERVER
            }
            return found if all(cid in found for cid, _, _ in sent) else None

        servers = receiver.wait_for(all_servers)
        create = servers["compat-create"]

        def consumer(r: OtlpReceiver) -> dict[str, Any] | None:
            return next(
                (
                    s
                    for s in r.spans()
                    if s["kind"] == CONSUMER and s["trace_id"] == create["trace_id"]
                ),
                None,
            )

        receiver.wait_for(consumer)
        time.sleep(1.2)  # the metrics staleness bound
        totals = {_requests_total(web.url) for _ in range(6)}  # both workers answer
    output = web.output()

    spans = receiver.spans()
    for cid, route, _ in sent:
        span = servers[cid]
        assert span["attributes"].get("http.route", "") == route, (cid, span["name"])
        assert span["name"] == (f"{'POST' if cid == 'compat-create' else 'GET'} {route}").strip()
    assert servers["compat-boom"]["status_code"] == 2
    jwt_span = servers["compat-jwt"]["attributes"]
    assert jwt_span.get("crm.user.id") == str(api_user["user_id"]), jwt_span
    assert jwt_span.get("crm.org.id") == str(api_user["org_id"]), jwt_span

    sql = [
        s
        for s in spans
        if s["trace_id"] == create["trace_id"] and s["attributes"].get("db.system") == "postgresql"
    ]
    assert sql, "no SQL span in the create request's trace"
    assert {s["scope"] for s in sql if s["parent_span_id"] == create["span_id"]} == {
        DRIVER_SCOPES[driver]
    }
    assert SECRET_NAME not in json.dumps([s["attributes"] for s in spans])
    kinds = {s["kind"] for s in spans if s["trace_id"] == create["trace_id"]}
    assert {PRODUCER, CONSUMER} <= kinds

    access = {
        line.get("correlation_id"): line for line in json_lines(output) if "status_code" in line
    }
    for cid, _, status in sent:
        line = access.get(cid)
        assert line is not None, f"no access line for {cid}"
        assert line["status_code"] == status
        assert line["trace_id"] == servers[cid]["trace_id"]
    assert access["compat-jwt"].get("user_id") == str(api_user["user_id"])
    assert access["compat-jwt"].get("org_id") == str(api_user["org_id"])
    assert SECRET_NAME not in output and api_user["access"] not in output

    assert totals == {float(len(sent))}, totals

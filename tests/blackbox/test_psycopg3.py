"""psycopg 3: the example CRM under `opentelemetry-instrument gunicorn -w 2` in a venv where
Django picks psycopg 3, with plain connections and with Django's connection pool."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.blackbox._harness import (
    DATABASE,
    ROOT,
    OtlpReceiver,
    crm_env,
    get,
    running,
    start_web,
)

pytestmark = pytest.mark.blackbox

SERVER = 2  # OTLP SpanKind
UNTRACED = "no installed instrumentation traces it"
LIMIT_1 = 'FROM "leads_lead" LIMIT 1'
"""In the SQL of the slow view's query (`Lead.objects.exists()`)."""


def _has_psycopg3(python: Path) -> bool:
    """Whether Django picks psycopg 3 (with its pool) in the venv of `python`."""
    probe = (
        "import crm_otel, psycopg_pool\n"
        "from django.db.backends.postgresql.psycopg_any import is_psycopg3\n"
        "assert is_psycopg3"
    )
    return subprocess.run([str(python), "-c", probe], capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def psycopg3_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `bin` of a venv with crm-otel installed non-editable plus `psycopg[binary,pool]`
    (`CRM_OTEL_TEST_VENV` when it already has psycopg 3)."""
    given = os.environ.get("CRM_OTEL_TEST_VENV")
    if given and _has_psycopg3(Path(given) / "bin" / "python"):
        return Path(given) / "bin"
    work = tmp_path_factory.mktemp("psycopg3")
    # Built from a copy: an in-tree build would leave build/ in the worktree, and stale
    # files there could end up in a later wheel.
    source = work / "src"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(".*", "build", "dist", "*.egg-info", "__pycache__"),
    )
    venv = work / "venv"
    python = venv / "bin" / "python"
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "-q", f"{source}[example]", "psycopg[binary,pool]"],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            message = f"cannot install psycopg 3 beside crm-otel: {done.stderr[-2000:]}"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
    assert _has_psycopg3(python), "the new venv does not import psycopg 3 and crm-otel"
    return venv / "bin"


def _postgres_queries() -> list[str]:
    """What every other connection to the CRM's database last sent (pg_stat_activity)."""
    import psycopg2

    connection = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT query FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (DATABASE,),
            )
            return [row[0] for row in cursor.fetchall()]
    finally:
        connection.close()


def _slow_request_sql(url: str) -> list[str]:
    """The SQL PostgreSQL saw from a request that queries, then sleeps 1.5 s."""
    thread = threading.Thread(target=get, args=(url + "/api/v1/slow/?ms=1500",))
    thread.start()
    seen: list[str] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not seen:
        seen = [q for q in _postgres_queries() if LIMIT_1 in q]
        time.sleep(0.05)
    thread.join()
    return seen


def _server_spans(receiver: OtlpReceiver, name: str) -> list[dict]:
    return [s for s in receiver.spans() if s["kind"] == SERVER and s["name"] == name]


@pytest.fixture(scope="session")
def django_has_pool(psycopg3_bin: Path) -> bool:
    """Whether the venv's Django has the connection pool (5.1+)."""
    probe = "import django; assert django.VERSION >= (5, 1)"
    return subprocess.run([str(psycopg3_bin / "python"), "-c", probe]).returncode == 0


@pytest.fixture(params=[False, True], ids=["plain", "pool"])
def pool(request: pytest.FixtureRequest, django_has_pool: bool) -> bool:
    """Whether Django's psycopg connection pool is on."""
    if request.param and not django_has_pool:
        pytest.skip("Django's connection pool needs Django 5.1+")
    return bool(request.param)


@pytest.mark.parametrize("commenter", [False, True], ids=["no-commenter", "sqlcommenter"])
def test_psycopg3_spans_metrics_and_no_parameter_values(
    crm: None, receiver: OtlpReceiver, psycopg3_bin: Path, pool: bool, commenter: bool
) -> None:
    """Under gunicorn -w 2 on psycopg 3 (plain or pooled), SQL spans are children of the
    request span without parameter values, sqlcommenter follows CRM_OTEL_SQLCOMMENTER, and
    the database metrics are exposed with no connection left counted after the requests."""
    env = crm_env(
        receiver,
        PATH=f"{psycopg3_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        CRM_EXAMPLE_DB_POOL="true" if pool else "",
        CRM_OTEL_SQLCOMMENTER="true" if commenter else "",
    )
    secret_name = f"Zorro-{uuid.uuid4().hex[:10]}"
    secret_term = f"needle-{uuid.uuid4().hex[:10]}"
    with running(start_web(env, server="gunicorn", workers=2, bin_dir=psycopg3_bin)) as web:
        for _ in range(4):  # both workers serve some
            status, _, body = get(
                web.url + "/api/v1/leads/",
                data=json.dumps({"name": secret_name, "email": "zorro@example.com"}).encode(),
                headers={"Content-Type": "application/json"},
            )
            assert status == 201, body
            assert get(web.url + f"/api/v1/search/?q={secret_term}")[0] == 200
        sql_sent = _slow_request_sql(web.url)
        time.sleep(1.5)  # every worker has written its metrics state since
        metrics_status, _, metrics_body = get(web.url + "/metrics")
        receiver.wait_for(lambda r: len(_server_spans(r, "GET api/v1/slow/")) == 1)
        receiver.wait_for(lambda r: len(_server_spans(r, "POST api/v1/leads/")) == 4)
        output = web.output()

    assert UNTRACED not in output
    spans = receiver.spans()
    by_id = {s["span_id"]: s for s in spans}
    sql = [s for s in spans if s["attributes"].get("db.system") == "postgresql"]
    inserts = [s for s in sql if "INSERT" in s["attributes"].get("db.statement", "")]
    searches = [s for s in sql if "LIKE UPPER(" in s["attributes"].get("db.statement", "")]
    assert len(inserts) == 4 and searches, sorted({s["name"] for s in sql})
    for span in [*inserts, *searches]:
        parent = by_id.get(span["parent_span_id"]) or {}
        while parent and parent["kind"] != SERVER:  # the search's own span sits between
            parent = by_id.get(parent["parent_span_id"]) or {}
        assert parent.get("name") in ("POST api/v1/leads/", "GET api/v1/search/"), span
        assert "%s" in span["attributes"]["db.statement"]
        assert not any(k.startswith("db.statement.parameters") for k in span["attributes"])
    everything = json.dumps([s["attributes"] for s in spans])
    assert secret_name not in everything
    assert secret_term not in json.dumps([s["attributes"] for s in sql])

    assert sql_sent, "the slow request's query never showed in pg_stat_activity"
    slow_trace = _server_spans(receiver, "GET api/v1/slow/")[0]["trace_id"]
    if commenter:
        assert any(f"traceparent='00-{slow_trace}-" in q for q in sql_sent), sql_sent
        assert "db_driver=" in sql_sent[0]
    else:
        assert not any("/*" in q for q in sql_sent), sql_sent

    assert metrics_status == 200
    families = {f.name: f for f in text_string_to_metric_families(metrics_body.decode())}
    durations = {
        s.labels["query_type"]: s.value
        for s in families["db_query_duration_ms"].samples
        if s.name == "db_query_duration_ms_count"
    }
    assert durations.get("insert") == 4.0 and durations.get("select", 0) >= 2, durations
    (active,) = families["db_connections_active_gauge"].samples
    assert active.value == 0.0, "connections still counted after every request ended"


@pytest.fixture
def tiny_pool_web(crm: None, psycopg3_bin: Path, django_has_pool: bool) -> Iterator[str]:
    """runserver (one thread per request) on psycopg 3 with a pool of one connection that
    makes a second request wait at most 0.5 s."""
    if not django_has_pool:
        pytest.skip("Django's connection pool needs Django 5.1+")
    env = crm_env(
        None,
        PATH=f"{psycopg3_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        OTEL_TRACES_EXPORTER="none",
        CRM_EXAMPLE_DB_POOL='{"min_size": 1, "max_size": 1, "timeout": 0.5}',
    )
    with running(start_web(env, bin_dir=psycopg3_bin)) as web:
        yield web.url


def test_pool_timeout_is_pool_exhaustion(tiny_pool_web: str) -> None:
    """A request that gets no connection from Django's psycopg pool in time counts once in
    db_pool_exhausted_total and db_errors_total{error_type="connection"}."""
    holder = threading.Thread(target=get, args=(tiny_pool_web + "/api/v1/slow/?ms=3000",))
    holder.start()
    deadline = time.monotonic() + 2
    while not any(LIMIT_1 in q for q in _postgres_queries()) and time.monotonic() < deadline:
        time.sleep(0.05)  # until the holder has queried on the pool's only connection
    status, _, _ = get(tiny_pool_web + "/api/v1/leads/")
    holder.join()
    assert status == 500
    time.sleep(1.2)
    body = get(tiny_pool_web + "/metrics")[2].decode()
    families = {f.name: f for f in text_string_to_metric_families(body)}
    (exhausted,) = [s for s in families["db_pool_exhausted"].samples if s.name.endswith("_total")]
    assert exhausted.value == 1.0
    errors = {s.labels["error_type"]: s.value for s in families["db_errors"].samples}
    assert errors["connection"] == 1.0
    (active,) = families["db_connections_active_gauge"].samples
    assert active.value == 0.0

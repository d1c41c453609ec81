"""Recording: business metrics from spans, bounded labels, database and Redis labels,
forked children counted once, and OTLP consumers getting units and buckets."""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry import metrics as otel_metrics
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Status, StatusCode

from crm_otel import metrics
from crm_otel._django import route_template
from crm_otel.metrics import _cache_scope, _runtime
from crm_otel.metrics._django import error_type, is_pool_exhaustion, query_type
from crm_otel.metrics._redis import request_hook, response_hook
from crm_otel.metrics._spans import BusinessMetricsProcessor
from semconv import attributes, spans


def _families(runtime: _runtime.Runtime) -> dict[str, Any]:
    return runtime.recorder.collect().families


def _tracer() -> Any:
    provider = TracerProvider()
    provider.add_span_processor(BusinessMetricsProcessor())
    return provider.get_tracer("test")


def test_workflow_spans_feed_runs_durations_and_action_failures(runtime: _runtime.Runtime) -> None:
    """A completed and a failed `workflow.execute` span count by workflow and status; the
    failed action's type is counted."""
    tracer = _tracer()
    with tracer.start_as_current_span(
        spans.WORKFLOW_EXECUTE, attributes={attributes.WORKFLOW_NAME: "Qualify"}
    ):
        pass
    with tracer.start_as_current_span(
        spans.WORKFLOW_EXECUTE, attributes={attributes.WORKFLOW_NAME: "Qualify"}
    ) as span:
        span.add_event(
            spans.EVENT_ACTION_COMPLETE,
            {attributes.ACTION_TYPE: "send_email", attributes.ACTION_STATUS: "failure"},
        )
        span.set_status(Status(StatusCode.ERROR))
    families = _families(runtime)
    assert families["workflow_runs_total"] == {
        (("status", "completed"), ("workflow", "Qualify")): 1.0,
        (("status", "failed"), ("workflow", "Qualify")): 1.0,
    }
    assert families["workflow_duration_ms"][(("workflow", "Qualify"),)].count == 2
    assert families["workflow_action_failures_total"] == {(("action_type", "send_email"),): 1.0}


def test_search_and_lead_score_spans_feed_their_metrics(runtime: _runtime.Runtime) -> None:
    """Search results and cache lookups, lead score lookups and recalculations are counted."""
    tracer = _tracer()
    for hit, results in ((True, 4), (False, 6)):
        with tracer.start_as_current_span(
            spans.SEARCH_QUERY,
            attributes={
                attributes.SEARCH_TYPE: "lead",
                attributes.SEARCH_CACHE_HIT: hit,
                attributes.SEARCH_RESULTS: results,
            },
        ):
            pass
    with tracer.start_as_current_span(
        spans.LEAD_SCORE_CALCULATE,
        attributes={
            attributes.LEAD_SCORE_CACHE_HIT: False,
            attributes.LEAD_SCORE_RECALCULATED: True,
        },
    ):
        pass
    families = _families(runtime)
    assert families["search_results_total"] == {(("type", "lead"),): 10.0}
    assert families["search_query_latency_ms"][(("type", "lead"),)].count == 2
    assert families["search_cache_lookups_total"][(("result", "hit"), ("type", "lead"))] == 1
    assert families["lead_score_cache_lookups_total"] == {(("result", "miss"),): 1.0}
    assert families["lead_score_recalculations_total"] == {(): 1.0}


def test_open_ended_labels_are_capped_and_overflow_counted(runtime: _runtime.Runtime) -> None:
    """Past the cap (3 here) new workflow names become `other`, and each is counted."""
    tracer = _tracer()
    for n in range(10):
        with tracer.start_as_current_span(
            spans.WORKFLOW_EXECUTE, attributes={attributes.WORKFLOW_NAME: f"wf-{n}"}
        ):
            pass
    runs = _families(runtime)["workflow_runs_total"]
    assert len(runs) == 4
    assert runs[(("status", "completed"), ("workflow", "other"))] == 7
    assert _families(runtime)["crm_otel_metrics_label_overflow_total"] == {
        (("label", "workflow"),): 7.0
    }


def test_forked_child_is_counted_once(runtime: _runtime.Runtime) -> None:
    """A child forked after the parent counted inherits nothing: the merged total is exact."""
    labels = {"method": "GET", "path": "/x/", "status": "200"}
    runtime.instruments.http_requests.add(5, labels)
    pid = os.fork()
    if pid == 0:  # the child: count 2 more, write, leave like a pool child does
        code = 0
        try:
            runtime.instruments.http_requests.add(2, labels)
            runtime.recorder.flush()
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    key = (("method", "GET"), ("path", "/x/"), ("status", "200"))
    assert _families(runtime)["http_requests_total"][key] == 7
    assert _families(runtime)["http_requests_total"][key] == 7  # the exited child stays counted


def test_redis_hooks_count_app_commands_only(
    runtime: _runtime.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Commands inside a request or task count as hit/miss/ok; broker polling outside does not."""
    # Which connections are the app's cache is tested against a real Redis (test_redis.py).
    monkeypatch.setattr(_cache_scope, "on_cache", lambda instance: True)
    client = SimpleNamespace()  # no connection_pool: the poller learns nothing from it
    request_hook(None, client, ("BRPOP", "celery"), {})
    response_hook(None, client, None)
    token = _runtime.in_app_work.set(True)
    try:
        for command, reply in (("GET", b"x"), ("GET", None), ("SET", True), ("FLUSHALL", True)):
            request_hook(None, client, (command, "k"), {})
            response_hook(None, client, reply)
    finally:
        _runtime.in_app_work.reset(token)
    assert _families(runtime)["cache_operations_total"] == {
        (("operation", "get"), ("status", "hit")): 1.0,
        (("operation", "get"), ("status", "miss")): 1.0,
        (("operation", "set"), ("status", "ok")): 1.0,
        (("operation", "other"), ("status", "ok")): 1.0,
    }


def test_websocket_helpers(runtime: _runtime.Runtime) -> None:
    """Connect, send and disconnect move the gauge, counter and duration histogram."""
    opened = metrics.websocket_connected()
    metrics.websocket_connected()
    metrics.websocket_message_sent(3)
    metrics.websocket_disconnected(opened)
    families = _families(runtime)
    assert families["websocket_active_connections_gauge"] == {(): 1.0}
    assert families["websocket_messages_sent_total"] == {(): 3.0}
    assert families["websocket_connection_duration_seconds"][()].count == 1


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        ("api/v1/leads/<int:pk>/", "/api/v1/leads/<int:pk>/"),
        ("^api/v1/legacy/(?P<pk>[0-9]+)/$", "/api/v1/legacy/(?P<pk>[0-9]+)/"),
        ("", "/"),
    ],
)
def test_route_template_has_a_leading_slash(route: str, expected: str) -> None:
    """The `path` label is the route template with one leading slash."""
    assert route_template(SimpleNamespace(route=route)) == expected


def test_unresolved_request_has_no_template() -> None:
    """A request no route matched has no template (the metrics label it `unmatched`)."""
    assert route_template(None) is None


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1", "select"),
        ("  insert into t values (1)", "insert"),
        ("(SELECT 1)", "select"),
        ("UPDATE t SET a=1", "update"),
        ("delete from t", "delete"),
        ("WITH x AS (...)", "other"),
        ("", "other"),
        ("SAVEPOINT s1", "other"),
    ],
)
def test_query_type(sql: str, expected: str) -> None:
    """Query types are the statement's first keyword within a fixed set."""
    assert query_type(sql) == expected


def test_error_types_and_pool_exhaustion() -> None:
    """Driver errors map to fixed error types; PostgreSQL's 53300 is pool exhaustion."""

    class QueryCanceled(Exception):
        pgcode = "57014"

    class OperationalError(Exception):
        pgcode = None

    wrapped = OperationalError("x")
    wrapped.__cause__ = QueryCanceled("canceling statement due to statement timeout")
    assert error_type(wrapped) == "timeout"
    full = OperationalError("FATAL:  sorry, too many clients already")
    assert error_type(full) == "connection" and is_pool_exhaustion(full)
    assert not is_pool_exhaustion(OperationalError("connection refused"))
    assert error_type(ValueError("x")) == "other"


def test_otlp_readers_get_units_and_millisecond_buckets(tmp_path: Any) -> None:
    """Exporters passed to `setup_metrics` see OTel names, units and the explicit buckets."""
    saved = (
        otel_metrics._internal._METER_PROVIDER,
        otel_metrics._internal._METER_PROVIDER_SET_ONCE,
    )
    readers: list[InMemoryMetricReader] = []

    class Reader(InMemoryMetricReader):
        def __init__(self) -> None:
            super().__init__()
            readers.append(self)

    from opentelemetry.util._once import Once

    otel_metrics._internal._METER_PROVIDER_SET_ONCE = Once()
    otel_metrics._internal._METER_PROVIDER = None
    try:
        metrics.setup_metrics(
            Resource.create({}), {"memory": Reader}, {"CRM_OTEL_METRICS_DIR": str(tmp_path)}
        )
        runtime = _runtime.current()
        assert runtime is not None
        runtime.instruments.http_request_duration.record(
            7.0, {"method": "GET", "path": "/", "status": "200"}
        )
        data = readers[0].get_metrics_data()
        found = {
            m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
        }
        duration = found["crm.http.request.duration"]
        assert duration.unit == "ms"
        assert tuple(duration.data.data_points[0].explicit_bounds)[:3] == (5, 10, 25)
        runtime.recorder.shutdown()
    finally:
        _runtime.install(None)
        otel_metrics._internal._METER_PROVIDER, otel_metrics._internal._METER_PROVIDER_SET_ONCE = (
            saved
        )


def test_a_process_whose_file_was_archived_does_not_count_twice(runtime: _runtime.Runtime) -> None:
    """If another process's scrape archived this process's file (it looked stopped), this
    process continues in a new file with only what it counted since."""
    import time

    from crm_otel.metrics._store import STALE_AFTER_S

    labels = {"method": "GET", "path": "/x/", "status": "200"}
    key = (("method", "GET"), ("path", "/x/"), ("status", "200"))
    runtime.instruments.http_requests.add(3, labels)
    runtime.recorder.flush()
    store = runtime.recorder._store
    archived = store.collect(now=time.time() + STALE_AFTER_S + 1)
    assert archived.archived == 1
    runtime.instruments.http_requests.add(1, labels)
    assert runtime.recorder.collect().families["http_requests_total"][key] == 4
    assert runtime.recorder.collect().families["http_requests_total"][key] == 4

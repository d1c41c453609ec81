"""Every catalogue family is on every metrics endpoint from the first scrape: the app's own
`/metrics` and the Celery worker's standalone port, before any request or task."""

from __future__ import annotations

import re

import pytest

from semconv import metrics
from tests.blackbox._harness import crm_env, free_port, get, running, start_web, start_worker

pytestmark = pytest.mark.blackbox

CATALOGUE = {d.prometheus_name: d for d in metrics.CATALOGUE}
_TYPES = {"counter": "counter", "up_down_counter": "gauge", "gauge": "gauge"}


def _declared(body: str) -> dict[str, tuple[str, str]]:
    """Family name -> (TYPE, HELP) as the exposition declares them."""
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", body, re.MULTILINE))
    helps = dict(re.findall(r"^# HELP (\S+) (.*)$", body, re.MULTILINE))
    return {name: (kind, helps.get(name, "")) for name, kind in types.items()}


def _check(body: str, where: str) -> None:
    declared = _declared(body)
    missing = sorted(set(CATALOGUE) - set(declared))
    assert not missing, f"{where}: families missing from the first scrape: {missing}"
    for name, definition in CATALOGUE.items():
        kind, help_text = declared[name]
        expected = _TYPES.get(definition.kind.value, definition.kind.value)
        assert kind == expected, f"{where}: {name} has TYPE {kind}, expected {expected}"
        assert help_text == definition.description.replace("\\", r"\\"), f"{where}: {name}"
    # Fixed label values start at 0; open-ended labels have no made-up series.
    assert 'db_errors_total{error_type="timeout"} 0.0' in body
    assert 'cache_operations_total{operation="get",status="miss"} 0.0' in body
    assert "workflow_runs_total{" not in body and "celery_tasks_total{" not in body


def test_a_scrape_before_any_traffic_lists_every_family(crm: None) -> None:
    """The web endpoint and the worker's port, scraped before any request or task, declare
    every catalogue family with its HELP and TYPE."""
    port = free_port()
    env = crm_env(None, OTEL_TRACES_EXPORTER="none")
    with running(start_worker({**env, "CRM_OTEL_METRICS_PORT": str(port)})):
        status, _, body = get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        _check(body.decode(), "worker port")
    with running(start_web(env)) as web:
        status, _, body = get(web.url + "/metrics")
        assert status == 200
        _check(body.decode(), "web /metrics")

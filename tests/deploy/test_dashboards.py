"""The Grafana dashboards of `deploy/grafana`: well formed, valid PromQL, known metric names."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import yaml

from tests._prometheus import PrometheusServer
from tests.deploy import _names
from tests.deploy.conftest import require_tool

PROVISIONING = _names.DEPLOY / "grafana" / "provisioning"

REQUIRED_PANELS = {
    "request": {
        "Requests per second by endpoint",
        "p95 latency by endpoint",
        "Error rate by endpoint",
        "Status code distribution",
    },
    "workflow": {
        "Workflow executions per hour",
        "Success vs failure",
        "Average execution time",
        "Most common failure reasons",
    },
    "system-health": {"DB connections in use", "Cache hit rate", "Memory usage", "CPU usage"},
    "tenants": {
        "Top orgs by request time",
        "Top orgs by DB time",
        "Top orgs by task time",
        "Top orgs by telemetry volume",
    },
}
"""The panels of the three dashboards of docs/design.md ("Dashboards and alerts"); Disk I/O has
no metric."""


def _datasource_uid() -> str:
    (path,) = (PROVISIONING / "datasources").glob("*.yml")
    (datasource,) = yaml.safe_load(path.read_text())["datasources"]
    assert datasource["type"] == "prometheus"
    return str(datasource["uid"])


def test_metric_names_extracts_selectors_only() -> None:
    """The name extractor keeps metric names and drops functions, labels, keywords and durations."""
    expr = (
        "histogram_quantile(0.95, sum by (path, le) (rate(http_request_duration_ms_bucket"
        '{job="crm-backend", le=~"1000(\\\\.0)?"}[$__rate_interval]))) > 1000 '
        'or on (job) absent(up{job="crm-backend"}) unless x:y:rate5m offset 5m'
    )
    assert _names.metric_names(expr) == {"http_request_duration_ms_bucket", "up", "x:y:rate5m"}
    assert _names.family("http_request_duration_ms_bucket") == "http_request_duration_ms"
    assert _names.family("http_requests_total") == "http_requests_total"


def test_three_dashboards_with_the_designed_panels() -> None:
    """Request, Workflow and System Health exist (and Tenants), with unique uids and the
    panels of docs/design.md."""
    dashboards = _names.dashboards()
    assert set(dashboards) == set(REQUIRED_PANELS)
    assert len({d["uid"] for d in dashboards.values()}) == len(dashboards)
    for stem, required in REQUIRED_PANELS.items():
        titles = {panel["title"] for panel in _names.panels(dashboards[stem])}
        assert required <= titles, f"{stem}: missing {required - titles}"


def test_dashboards_are_valid_json_with_panels_laid_out() -> None:
    """Each file parses as JSON; panels have unique ids and fit Grafana's 24-column grid."""
    for path in sorted(_names.DASHBOARDS_DIR.glob("*.json")):
        dashboard = json.loads(path.read_text())
        assert dashboard["title"] and dashboard["uid"] and dashboard["panels"], path.name
        ids = [panel["id"] for panel in _names.panels(dashboard)]
        assert len(ids) == len(set(ids)), path.name
        for panel in _names.panels(dashboard):
            grid = panel["gridPos"]
            assert (
                grid["w"] > 0 and grid["h"] > 0 and grid["x"] >= 0 and grid["x"] + grid["w"] <= 24
            )


def test_every_panel_has_targets_on_the_provisioned_datasource() -> None:
    """Every panel has at least one PromQL target, on the datasource uid provisioning defines."""
    uid = _datasource_uid()
    for stem, dashboard in _names.dashboards().items():
        for panel in _names.panels(dashboard):
            if panel["type"] == "row":
                continue
            assert panel.get("targets"), f"{stem}: {panel['title']} has no target"
            assert panel["datasource"] == {"type": "prometheus", "uid": uid}
            for target in panel["targets"]:
                assert target["expr"].strip(), f"{stem}: {panel['title']} {target['refId']}"
                assert target["datasource"]["uid"] == uid
            ref_ids = [target["refId"] for target in panel["targets"]]
            assert len(ref_ids) == len(set(ref_ids))


def test_latency_histogram_targets_show_exemplars() -> None:
    """Every target over a latency histogram's buckets asks Grafana for its exemplars, and
    the datasource links an exemplar's `trace_id` to the trace."""
    latency = ("_duration_ms_bucket", "_duration_seconds_bucket")
    asked = []
    for stem, dashboard in _names.dashboards().items():
        for panel in _names.panels(dashboard):
            for target in panel.get("targets", []):
                if any(name in target["expr"] for name in latency):
                    asked.append((stem, panel["title"], target.get("exemplar")))
    assert len(asked) >= 3 and all(exemplar is True for *_, exemplar in asked), asked
    (path,) = (PROVISIONING / "datasources").glob("*.yml")
    (datasource,) = yaml.safe_load(path.read_text())["datasources"]
    names = [d["name"] for d in datasource["jsonData"]["exemplarTraceIdDestinations"]]
    assert names == ["trace_id"]


def test_queries_use_only_designed_metrics_and_recording_rules() -> None:
    """Every metric a dashboard or rule selects is a docs/design.md family or a recording rule."""
    allowed = _names.ALLOWED_METRICS | _names.recorded_names()
    used: dict[str, set[str]] = {}
    for stem, title, ref_id, expr in _names.panel_queries():
        used[f"{stem}: {title} {ref_id}"] = _names.metric_names(expr)
    for rule in _names.rules():
        used[rule.get("alert") or rule["record"]] = _names.metric_names(rule["expr"])
    for where, names in used.items():
        assert names, f"{where}: selects no metric"
        unknown = {n for n in names if _names.family(n) not in allowed}
        assert unknown == set(), f"{where}: {unknown}"


def test_allowed_metrics_are_in_the_semconv_catalogue() -> None:
    """Every family the assets may use is in semconv's catalogue, so a rename fails here."""
    from semconv import metrics

    catalogue = {definition.prometheus_name for definition in metrics.CATALOGUE}
    assert _names.ALLOWED_METRICS - {"up"} - catalogue == set()


def test_queries_select_the_crm_backend_job() -> None:
    """Every dashboard selector is scoped to `job="crm-backend"`, the job Prometheus scrapes."""
    for stem, title, ref_id, expr in _names.panel_queries():
        selectors = expr.count("{")
        assert selectors and expr.count('job="crm-backend"') == selectors, (
            f"{stem}: {title} {ref_id}"
        )


def test_provisioning_points_at_the_dashboards_folder() -> None:
    """The dashboard provider loads a folder (compose mounts deploy/grafana/dashboards there)."""
    (path,) = (PROVISIONING / "dashboards").glob("*.yml")
    (provider,) = yaml.safe_load(path.read_text())["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusServer]:
    """A real Prometheus with the rules loaded, used as a PromQL parser (HTTP 400 on bad syntax)."""
    require_tool("prometheus")
    with PrometheusServer(rule_files=_names.rule_files()) as server:
        yield server


@pytest.mark.parametrize(
    "query", _names.panel_queries(), ids=lambda q: f"{q[0]}:{q[1]}:{q[2]}".replace(" ", "_")
)
def test_every_query_parses(prometheus: PrometheusServer, query: tuple[str, str, str, str]) -> None:
    """Prometheus accepts each panel query (a syntax error would raise `PrometheusError`)."""
    prometheus.query(query[3])


def test_prometheus_loads_every_rule(prometheus: PrometheusServer) -> None:
    """The real server loads every rule file with all its rules, and evaluates them healthily."""
    loaded = {rule["name"]: rule for group in prometheus.rules() for rule in group["rules"]}
    expected = {rule.get("alert") or rule["record"] for rule in _names.rules()}
    assert set(loaded) == expected
    unhealthy = {
        name: rule.get("lastError") for name, rule in loaded.items() if rule.get("health") == "err"
    }
    assert unhealthy == {}

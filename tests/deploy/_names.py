"""Metric names the deployment assets may use, and the metric names a PromQL expression uses."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from semconv.metrics import TENANT_FAMILIES

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
DASHBOARDS_DIR = DEPLOY / "grafana" / "dashboards"

HISTOGRAMS = frozenset(
    {
        "http_request_duration_ms",
        "workflow_duration_ms",
        "search_query_latency_ms",
        "websocket_connection_duration_seconds",
        "lead_score_calculation_duration_ms",
        "db_query_duration_ms",
        "celery_task_duration_seconds",
    }
)
"""The histograms of docs/design.md (Metrics), exposed as `_bucket`, `_sum` and `_count`."""

DESIGN_METRICS = HISTOGRAMS | {
    "http_requests_total",
    "http_errors_total",
    "workflow_runs_total",
    "workflow_action_failures_total",
    "search_results_total",
    "search_cache_hit_rate",
    "websocket_active_connections_gauge",
    "websocket_messages_sent_total",
    "lead_score_cache_hit_rate",
    "lead_score_recalculations_total",
    "db_connections_active_gauge",
    "db_errors_total",
    "db_pool_exhausted_total",
    "cache_hit_rate_gauge",
    "cache_operations_total",
    "cache_evictions_total",
    "celery_tasks_total",
    "celery_queue_length_gauge",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    "up",
}
"""The metric families of docs/design.md, Metrics (plus process metrics and Prometheus's `up`)."""

LOOKUP_COUNTERS = frozenset({"search_cache_lookups_total", "lead_score_cache_lookups_total"})
"""Counters of semconv's catalogue behind the designed `search_cache_hit_rate` and
`lead_score_cache_hit_rate` gauges: hit ratios over a window are computed from them."""

SAMPLER_METRICS = frozenset({"crm_otel_sampling_traces_total", "crm_otel_sampling_spans_buffered"})
"""The tail sampler's own metrics (semconv's catalogue), shown on System Health."""

TENANT_METRICS = frozenset(d.prometheus_name for d in TENANT_FAMILIES)
"""Cost by org (semconv's catalogue), shown on Tenants."""

ALLOWED_METRICS = DESIGN_METRICS | LOOKUP_COUNTERS | SAMPLER_METRICS | TENANT_METRICS
"""Every family the rules and dashboards may select, besides recording rules."""

_KEYWORDS = frozenset({"and", "or", "unless", "offset", "bool", "inf", "nan", "atan2"})
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![A-Za-z0-9_:.$])[a-zA-Z_:][a-zA-Z0-9_:]*")

GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "5m", "$__interval": "15s"}
"""What the tests put in place of Grafana's built-in variables before asking Prometheus."""


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (functions, keywords and labels excluded)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals (regexes, label values)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery durations
    text = _LABEL_LISTS.sub(" ", text)  # by (...), on (...), group_left (...)
    text = re.sub(r"\boffset\s+\S+", " ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        word = match.group()
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        if word.lower() in _KEYWORDS:
            continue
        names.add(word)
    return names


def family(name: str) -> str:
    """The metric family of a series name: histogram suffixes are stripped."""
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in HISTOGRAMS:
            return name[: -len(suffix)]
    return name


def rule_files() -> list[Path]:
    """The rule files of deploy/prometheus (prometheus.yml is the server's configuration)."""
    return [p for p in sorted(PROMETHEUS_DIR.glob("*.yml")) if p.name != "prometheus.yml"]


def rules() -> list[dict[str, Any]]:
    """Every alerting and recording rule of deploy/prometheus."""
    return [
        rule
        for path in rule_files()
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def recorded_names() -> set[str]:
    """The names of the recording rules of deploy/prometheus."""
    return {rule["record"] for rule in rules() if "record" in rule}


def dashboards() -> dict[str, dict[str, Any]]:
    """The dashboard JSON of deploy/grafana/dashboards, by file stem."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(DASHBOARDS_DIR.glob("*.json"))}


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """The panels of a dashboard, rows' nested panels included."""
    found = []
    for panel in dashboard.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def promql(expr: str) -> str:
    """A dashboard expression with Grafana's variables replaced, ready for Prometheus."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def panel_queries() -> list[tuple[str, str, str, str]]:
    """(dashboard, panel title, refId, PromQL) of every query of every dashboard panel."""
    return [
        (stem, panel["title"], target["refId"], promql(target["expr"]))
        for stem, dashboard in dashboards().items()
        for panel in panels(dashboard)
        if panel.get("type") != "row"
        for target in panel.get("targets", [])
    ]

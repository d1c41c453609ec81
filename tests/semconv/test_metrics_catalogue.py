"""The metric catalogue: unique names, units, and exactly the design's exposed families."""

from __future__ import annotations

import inspect
import re

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from semconv import metrics
from semconv._definition import InstrumentKind

CONTRACT_FAMILIES = {
    "http_requests_total", "http_request_duration_ms", "http_errors_total",
    "workflow_runs_total", "workflow_duration_ms", "workflow_action_failures_total",
    "search_query_latency_ms", "search_results_total", "search_cache_hit_rate",
    "websocket_active_connections_gauge", "websocket_messages_sent_total",
    "websocket_connection_duration_seconds", "lead_score_calculation_duration_ms",
    "lead_score_cache_hit_rate", "lead_score_recalculations_total",
    "db_connections_active_gauge", "db_query_duration_ms", "db_errors_total",
    "db_pool_exhausted_total", "cache_hit_rate_gauge", "cache_operations_total",
    "cache_evictions_total", "celery_tasks_total", "celery_task_duration_seconds",
    "celery_queue_length_gauge",
}  # fmt: skip
"""CONTRACT.md section 6, verbatim."""

PROCESS_FAMILIES = {"process_resident_memory_bytes", "process_cpu_seconds_total"}
HIT_RATE_INPUTS = {"search_cache_lookups_total", "lead_score_cache_lookups_total"}
SELF_FAMILIES = {
    "crm_otel_sampling_traces_total", "crm_otel_sampling_spans_buffered",
    "crm_otel_sampling_forced_decisions_total", "crm_otel_sampling_late_spans_total",
    "crm_otel_sampling_spans_dropped_total", "crm_otel_metrics_label_overflow_total",
    "crm_otel_export_dropped_total", "crm_otel_export_items_total",
    "crm_otel_sampling_held_traces_total",
    "crm_otel_sampling_spans_held", "crm_otel_sampling_upstream_released_total",
    "crm_otel_sampling_relay_errors_total", "crm_otel_metrics_exemplars_dropped_total",
}  # fmt: skip
TENANT_FAMILIES = {d.prometheus_name for d in metrics.TENANT_FAMILIES}


def test_names_are_unique() -> None:
    """No two definitions share an OpenTelemetry name or a Prometheus family."""
    names = [d.name for d in metrics.CATALOGUE]
    families = [d.prometheus_name for d in metrics.CATALOGUE]
    assert len(names) == len(set(names))
    assert len(families) == len(set(families))


def test_exposed_families_are_the_contract_list_plus_documented_extras() -> None:
    """The 25 contract families are all there, and the only others are process, hit-rate
    inputs, crm-otel's own and the cost-by-org families."""
    families = {d.prometheus_name for d in metrics.CATALOGUE}
    assert len(CONTRACT_FAMILIES) == 25
    assert families >= CONTRACT_FAMILIES
    assert families - CONTRACT_FAMILIES == PROCESS_FAMILIES | HIT_RATE_INPUTS | SELF_FAMILIES | (
        TENANT_FAMILIES
    )


@pytest.mark.parametrize("definition", metrics.CATALOGUE, ids=lambda d: d.prometheus_name)
def test_definition_is_complete(definition: metrics.MetricDefinition) -> None:
    """Every definition has a unit, a description, legal label names, and a family name
    that matches its kind (counters end in `_total`, histograms carry their unit)."""
    assert definition.unit
    assert definition.description.endswith(".")
    assert re.fullmatch(r"[a-z_][a-z0-9_]*", definition.prometheus_name)
    assert all(re.fullmatch(r"[a-z_][a-z0-9_]*", label) for label in definition.labels)
    assert "le" not in definition.labels and "quantile" not in definition.labels
    if definition.kind is InstrumentKind.COUNTER:
        assert definition.prometheus_name.endswith("_total")
    if definition.kind is InstrumentKind.HISTOGRAM:
        assert definition.unit in ("ms", "s")
        assert definition.prometheus_name.endswith("_ms" if definition.unit == "ms" else "_seconds")


def test_every_definition_has_a_factory_that_creates_its_instrument() -> None:
    """`create_<name>` exists for each definition and creates an instrument of its name and unit."""
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    factories = {f for f in dir(metrics) if f.startswith("create_")}
    assert len(factories) == len(metrics.CATALOGUE)
    for name in sorted(factories):
        factory = getattr(metrics, name)
        takes_callbacks = "callbacks" in inspect.signature(factory).parameters
        instrument = factory(meter, []) if takes_callbacks else factory(meter)
        assert instrument.name in metrics.BY_NAME
        assert instrument.unit == metrics.BY_NAME[instrument.name].unit


def test_units_are_ucum_and_never_appear_in_otel_names() -> None:
    """OTLP consumers get the unit as metadata (`ms`, `s`, `By`, `1`, `{x}`), not in the name."""
    for definition in metrics.CATALOGUE:
        assert re.fullmatch(r"ms|s|By|1|\{[a-z]+\}", definition.unit), definition
        assert not definition.name.endswith(("_ms", "_seconds", "_total")), definition

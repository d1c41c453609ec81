"""The metric catalogue: unique names, sound definitions, instruments as defined, and the
README's metric table row for row."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import Gauge, Histogram, InMemoryMetricReader, Sum

from semconv import metrics
from semconv._definition import InstrumentKind, MetricDefinition

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()

DESIGN_FAMILIES = {
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
"""The families of docs/design.md (Metrics, Names) that dashboards and alerts use: renaming
one breaks them."""

README_TYPE = {
    InstrumentKind.COUNTER: "counter",
    InstrumentKind.UP_DOWN_COUNTER: "gauge (up-down counter)",
    InstrumentKind.HISTOGRAM: "histogram",
    InstrumentKind.GAUGE: "gauge",
}


def _readme_rows() -> list[list[str]]:
    """The cells of each row of the README's metric table (under `### The metrics`)."""
    section = README.split("\n### The metrics\n", 1)[1]
    lines = section.lstrip("\n").splitlines()
    table = lines[: next(i for i, x in enumerate(lines) if not x)]
    assert re.fullmatch(r"\|(---\|)+", table[1]), "the metric table has a header row"
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in table[2:]]


def _readme_row(definition: MetricDefinition) -> list[str]:
    labels = ", ".join(f"`{label}`" for label in definition.labels) or "—"
    return [
        f"`{definition.prometheus_name}`",
        README_TYPE[definition.kind],
        labels,
        definition.description,
        f"`{definition.name}` (`{definition.unit}`)",
    ]


def test_names_are_unique() -> None:
    """No two definitions share an OpenTelemetry name or a Prometheus family."""
    names = [d.name for d in metrics.CATALOGUE]
    families = [d.prometheus_name for d in metrics.CATALOGUE]
    assert len(names) == len(set(names))
    assert len(families) == len(set(families))


def test_the_readme_table_is_the_catalogue() -> None:
    """The README's metric table has one row per definition, giving exactly its family,
    type, labels, meaning, OpenTelemetry name and unit, and no other row."""
    rows = {row[0]: row for row in _readme_rows()}
    expected = {f"`{d.prometheus_name}`": _readme_row(d) for d in metrics.CATALOGUE}
    assert len(rows) == len(_readme_rows()), "a family has two rows"
    for family in sorted(rows.keys() | expected.keys()):
        assert rows.get(family) == expected.get(family), family


def test_the_designed_families_are_all_there() -> None:
    """Every family dashboards and alerts were designed against is in the catalogue."""
    assert DESIGN_FAMILIES - {d.prometheus_name for d in metrics.CATALOGUE} == set()


def test_the_catalogue_is_every_definition_of_the_module() -> None:
    """`CATALOGUE` holds each definition of `semconv.metrics` once, and `BY_NAME` and
    `TENANT_FAMILIES` are drawn from it (the cost-by-org families: those labelled by org)."""
    defined = [v for v in vars(metrics).values() if isinstance(v, MetricDefinition)]
    assert sorted(d.name for d in metrics.CATALOGUE) == sorted(d.name for d in defined)
    assert {d.name: d for d in metrics.CATALOGUE} == metrics.BY_NAME
    assert tuple(d for d in metrics.CATALOGUE if "org" in d.labels) == metrics.TENANT_FAMILIES


@pytest.mark.parametrize("definition", metrics.CATALOGUE, ids=lambda d: d.prometheus_name)
def test_definition_is_complete(definition: MetricDefinition) -> None:
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


def test_units_are_ucum_and_never_appear_in_otel_names() -> None:
    """OTLP consumers get the unit as metadata (`ms`, `s`, `By`, `1`, `{x}`), not in the name."""
    for definition in metrics.CATALOGUE:
        assert re.fullmatch(r"ms|s|By|1|\{[a-z]+\}", definition.unit), definition
        assert not definition.name.endswith(("_ms", "_seconds", "_total")), definition


@pytest.mark.parametrize("definition", metrics.CATALOGUE, ids=lambda d: d.prometheus_name)
def test_create_makes_the_defined_instrument(definition: MetricDefinition) -> None:
    """`create` makes an instrument the SDK collects under the definition's name, unit and
    description, as a point type of its kind; an observable one reports its callbacks."""
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    if definition.observable:

        def observe(options: CallbackOptions) -> list[Observation]:
            return [Observation(2)]

        definition.create(meter, [observe])
    else:
        instrument = definition.create(meter)
        for method in ("add", "record", "set"):  # counters, histograms, gauges
            if hasattr(instrument, method):
                getattr(instrument, method)(2)
    data = reader.get_metrics_data()
    assert data is not None
    (metric,) = [m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
    assert (metric.name, metric.unit, metric.description) == (
        definition.name,
        definition.unit,
        definition.description,
    )
    expected = {
        InstrumentKind.COUNTER: (Sum, True),
        InstrumentKind.UP_DOWN_COUNTER: (Sum, False),
        InstrumentKind.HISTOGRAM: (Histogram, None),
        InstrumentKind.GAUGE: (Gauge, None),
    }[definition.kind]
    assert (type(metric.data), getattr(metric.data, "is_monotonic", None)) == expected
    (point,) = metric.data.data_points
    assert (point.sum if isinstance(metric.data, Histogram) else point.value) == 2


def test_create_keeps_callbacks_to_observable_metrics() -> None:
    """Callbacks given to a metric recorded per event are refused, and a histogram cannot
    be defined observable."""
    meter = MeterProvider().get_meter("test")
    with pytest.raises(ValueError, match="recorded per event"):
        metrics.HTTP_REQUESTS.create(meter, [lambda options: []])
    with pytest.raises(ValueError, match="no observable form"):
        MetricDefinition(
            name="crm.x.duration",
            kind=InstrumentKind.HISTOGRAM,
            unit="ms",
            description="X.",
            prometheus_name="x_ms",
            observable=True,
        )

"""Prometheus text under the family names of docs/design.md; hit rates derived at scrape time."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from crm_otel.metrics._exposition import derived_rates, render
from crm_otel.metrics._values import Histogram
from semconv import metrics

GET = (("method", "GET"), ("path", "/api/v1/leads/<int:pk>/"), ("status", "200"))


def _samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def test_histogram_is_exposed_under_its_family_name_without_unit_suffix_or_scope_labels() -> None:
    """`http_request_duration_ms_bucket{...,le=...}`, never `_milliseconds`, `otel_scope_*`
    or `target_info`."""
    hist = Histogram((5.0, 10.0), (1, 2, 1), 40.0)
    text = render({"http_request_duration_ms": {GET: hist}})
    samples = _samples(text)
    labels = tuple(sorted((*GET, ("le", "10.0"))))
    assert samples[("http_request_duration_ms_bucket", labels)] == 3
    assert samples[("http_request_duration_ms_bucket", tuple(sorted((*GET, ("le", "+Inf")))))] == 4
    assert samples[("http_request_duration_ms_count", GET)] == 4
    assert samples[("http_request_duration_ms_sum", GET)] == 40.0
    body = text.decode()
    assert "_milliseconds" not in body and "otel_scope" not in body and "target_info" not in body
    assert "# TYPE http_request_duration_ms histogram" in body


def test_counters_keep_their_total_name_and_type() -> None:
    """A counter family is typed counter and its sample is the family's `_total` name."""
    body = render({"http_requests_total": {GET: 3.0}}).decode()
    assert "# TYPE http_requests_total counter" in body
    assert (
        'http_requests_total{method="GET",path="/api/v1/leads/<int:pk>/",status="200"} 3.0' in body
    )


def test_unlabelled_families_and_fixed_error_types_appear_at_zero() -> None:
    """Unlabelled counters, gauges and histograms, and every db error type, are present
    before their first event, so alerts see a series from the first scrape."""
    samples = _samples(render({}))
    assert samples[("db_pool_exhausted_total", ())] == 0
    assert samples[("websocket_active_connections_gauge", ())] == 0
    assert samples[("lead_score_calculation_duration_ms_count", ())] == 0
    for error_type in metrics.DbErrorType:
        assert samples[("db_errors_total", (("error_type", error_type.value),))] == 0
    assert not any(name == "cache_hit_rate_gauge" for name, _ in samples)  # no lookup yet


def test_hit_rates_are_derived_from_merged_lookups() -> None:
    """Hit rates are hits / (hits + misses) over all processes, per remaining label set."""
    families = {
        "cache_operations_total": {
            (("operation", "get"), ("status", "hit")): 6.0,
            (("operation", "mget"), ("status", "miss")): 2.0,
            (("operation", "set"), ("status", "ok")): 50.0,
        },
        "search_cache_lookups_total": {
            (("result", "hit"), ("type", "lead")): 1.0,
            (("result", "miss"), ("type", "lead")): 3.0,
        },
    }
    rates = derived_rates(families)
    assert rates["cache_hit_rate_gauge"] == {(): 0.75}
    assert rates["search_cache_hit_rate"] == {(("type", "lead"),): 0.25}
    assert rates["lead_score_cache_hit_rate"] == {}
    samples = _samples(render(families))
    assert samples[("cache_hit_rate_gauge", ())] == 0.75
    assert samples[("search_cache_hit_rate", (("type", "lead"),))] == 0.25


def test_label_values_are_escaped() -> None:
    """Quotes, backslashes and newlines in a label value cannot break the format."""
    odd = (("action_type", 'a"b\\c\nd'),)
    samples = _samples(render({"workflow_action_failures_total": {odd: 1.0}}))
    assert samples[("workflow_action_failures_total", odd)] == 1


def test_every_catalogue_family_is_declared_before_any_data() -> None:
    """With nothing recorded, every catalogue family has its HELP and TYPE lines; label sets
    known up front (cache reads, lead-score results, forced-decision caps) start at 0."""
    body = render({}).decode()
    for definition in metrics.CATALOGUE:
        name = definition.prometheus_name
        assert f"# HELP {name} " in body and f"# TYPE {name} " in body, name
    samples = _samples(body.encode())
    assert samples[("cache_operations_total", (("operation", "get"), ("status", "hit")))] == 0
    assert samples[("lead_score_cache_lookups_total", (("result", "miss"),))] == 0
    assert samples[("crm_otel_sampling_forced_decisions_total", (("cap", "trace_age"),))] == 0
    assert not any(name == "http_errors_total" for name, _ in samples)  # open-ended labels

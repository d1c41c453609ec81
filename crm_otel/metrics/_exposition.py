"""Merged families to Prometheus text, under the catalogue's exact family names.

The OpenTelemetry Prometheus exporter would append unit suffixes
(`http_request_duration_ms_milliseconds`), add `otel_scope_*` labels and a `target_info`
series; this renderer writes what the design names instead, with prometheus_client's
own text writer so the format is prometheus_client's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from crm_otel.metrics._instruments import buckets_for
from crm_otel.metrics._snapshot import POLICY, Families, Histogram, Labels, Merge
from sampling import Cap
from semconv import metrics as semconv_metrics
from semconv._definition import InstrumentKind, MetricDefinition

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The classic text format, understood by every Prometheus release."""

_ZERO_WHEN_EMPTY: dict[str, tuple[Labels, ...]] = {
    semconv_metrics.DB_ERRORS.prometheus_name: tuple(
        (("error_type", t.value),) for t in semconv_metrics.DbErrorType
    ),
    semconv_metrics.CACHE_OPERATIONS.prometheus_name: tuple(
        (("operation", "get"), ("status", s.value))
        for s in (semconv_metrics.CacheStatus.HIT, semconv_metrics.CacheStatus.MISS)
    ),
    semconv_metrics.LEAD_SCORE_CACHE_LOOKUPS.prometheus_name: tuple(
        (("result", r.value),) for r in semconv_metrics.LookupResult
    ),
    semconv_metrics.SAMPLING_FORCED_DECISIONS.prometheus_name: tuple(
        (("cap", c.value),) for c in Cap
    ),
}
"""Labelled families whose label values are known up front (a fixed set, no open-ended
label), exposed at 0 before they first happen so `rate()` and alerts see a series from
the first scrape: every database error type, cache reads that hit and missed, lead-score
cache results, and what can force a sampling decision. Families with an open-ended label
(`path`, `task`, `workflow`, ...) have no series until their first event."""

_RATES: tuple[tuple[MetricDefinition, str, str, str, str | None], ...] = (
    # (rate family, source family, label holding the result, hit value, miss value)
    (
        semconv_metrics.CACHE_HIT_RATE,
        semconv_metrics.CACHE_OPERATIONS.prometheus_name,
        "status",
        "hit",
        "miss",
    ),
    (
        semconv_metrics.SEARCH_CACHE_HIT_RATE,
        semconv_metrics.SEARCH_CACHE_LOOKUPS.prometheus_name,
        "result",
        "hit",
        "miss",
    ),
    (
        semconv_metrics.LEAD_SCORE_CACHE_HIT_RATE,
        semconv_metrics.LEAD_SCORE_CACHE_LOOKUPS.prometheus_name,
        "result",
        "hit",
        "miss",
    ),
)


def derived_rates(families: Families) -> Families:
    """The hit-rate gauges, computed from the merged lookup counters (ratios do not sum).

    A rate is hits / (hits + misses) since the processes started, per remaining label set
    (the cache's rate ignores the operation label); a label set with no lookup has none.
    """
    out: Families = {}
    for definition, source, result_label, hit, miss in _RATES:
        totals: dict[Labels, list[float]] = {}
        for labels, value in families.get(source, {}).items():
            result = dict(labels).get(result_label)
            if result not in (hit, miss) or isinstance(value, Histogram):
                continue
            key = tuple(p for p in labels if p[0] in definition.labels)
            pair = totals.setdefault(key, [0.0, 0.0])
            pair[0 if result == hit else 1] += value
        out[definition.prometheus_name] = {
            key: hits / (hits + misses)
            for key, (hits, misses) in totals.items()
            if hits + misses > 0
        }
    return out


def _family(definition: MetricDefinition, series: dict[Labels, float | Histogram]) -> Metric:
    name, help_text = definition.prometheus_name, definition.description
    label_names = list(definition.labels)
    if definition.kind is InstrumentKind.HISTOGRAM:
        histogram = HistogramMetricFamily(name, help_text, labels=label_names)
        for labels, value in sorted(series.items()):
            if not isinstance(value, Histogram):
                continue
            cumulative, buckets = 0, []
            for bound, count in zip((*value.bounds, math.inf), value.counts, strict=True):
                cumulative += count
                buckets.append((_le(bound), float(cumulative)))
            histogram.add_metric(_values(label_names, labels), buckets, value.total)
        return histogram
    family: CounterMetricFamily | GaugeMetricFamily
    if definition.kind is InstrumentKind.COUNTER:
        family = CounterMetricFamily(name, help_text, labels=label_names)
    else:
        family = GaugeMetricFamily(name, help_text, labels=label_names)
    for labels, value in sorted(series.items()):
        if not isinstance(value, Histogram):
            family.add_metric(_values(label_names, labels), value)
    return family


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def _values(label_names: list[str], labels: Labels) -> list[str]:
    given = dict(labels)
    return [given.get(name, "") for name in label_names]


def families_to_render(families: Families) -> Iterator[Metric]:
    """Every catalogue family, in catalogue order, data or not (its HELP and TYPE lines
    at least); unlabelled counters, up-down counters and histograms, and the fixed label
    values of `_ZERO_WHEN_EMPTY`, appear at 0 before their first event."""
    everything = {**families, **derived_rates(families)}
    for definition in semconv_metrics.CATALOGUE:
        name = definition.prometheus_name
        series = dict(everything.get(name, {}))
        for labels in _ZERO_WHEN_EMPTY.get(name, ()):
            series.setdefault(labels, 0.0)
        if (
            not series
            and not definition.labels
            and POLICY[name] is not Merge.DERIVED
            and (
                definition.kind
                in (
                    InstrumentKind.COUNTER,
                    InstrumentKind.UP_DOWN_COUNTER,
                    InstrumentKind.HISTOGRAM,
                )
            )
        ):
            series[()] = (
                _empty_histogram(definition) if definition.kind is InstrumentKind.HISTOGRAM else 0.0
            )
        yield _family(definition, series)


def _empty_histogram(definition: MetricDefinition) -> Histogram:
    bounds = buckets_for(definition)
    return Histogram(bounds, (0,) * (len(bounds) + 1), 0.0)


class _Snapshot(Collector):
    def __init__(self, metrics: Iterable[Metric]) -> None:
        self._metrics = list(metrics)

    def collect(self) -> Iterable[Metric]:
        return self._metrics


def render(families: Families) -> bytes:
    """Prometheus text (format 0.0.4) of the merged families."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(families_to_render(families)))
    return generate_latest(registry)

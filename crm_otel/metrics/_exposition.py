"""Merged families to Prometheus text, under the catalogue's exact family names.

The OpenTelemetry Prometheus exporter would append unit suffixes
(`http_request_duration_ms_milliseconds`), add `otel_scope_*` labels and a `target_info`
series; this renderer writes the catalogue's names instead, with prometheus_client's
own writers so the format is prometheus_client's: Prometheus text, or OpenMetrics (with
the latency histograms' exemplars) for a scraper that asks for it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Exemplar as Sample

from crm_otel.metrics._exemplars import Exemplar, Key
from crm_otel.metrics._instruments import buckets_for
from crm_otel.metrics._merge import POLICY, Merge
from crm_otel.metrics._values import Families, Histogram, Labels
from sampling import Cap
from semconv import metrics as semconv_metrics
from semconv._definition import InstrumentKind, MetricDefinition

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The classic text format, understood by every Prometheus release."""
OPENMETRICS_CONTENT_TYPE = openmetrics.CONTENT_TYPE_LATEST
"""OpenMetrics 1.0 text, which carries exemplars."""

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


def _family(
    definition: MetricDefinition,
    series: dict[Labels, float | Histogram],
    exemplars: dict[tuple[Labels, int], Exemplar] | None = None,
) -> Metric:
    name, help_text = definition.prometheus_name, definition.description
    label_names = list(definition.labels)
    if definition.kind is InstrumentKind.HISTOGRAM:
        histogram = HistogramMetricFamily(name, help_text, labels=label_names)
        for labels, value in sorted(series.items()):
            if not isinstance(value, Histogram):
                continue
            cumulative = 0
            buckets: list[Any] = []  # (le, count), or (le, count, exemplar)
            bounds = (*value.bounds, math.inf)
            for index, (bound, count) in enumerate(zip(bounds, value.counts, strict=True)):
                cumulative += count
                exemplar = exemplars.get((labels, index)) if exemplars else None
                if exemplar is None:
                    buckets.append((_le(bound), float(cumulative)))
                else:
                    buckets.append((_le(bound), float(cumulative), _sample(exemplar)))
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


def _sample(exemplar: Exemplar) -> Sample:
    labels = {"trace_id": exemplar.trace_id, "span_id": exemplar.span_id}
    return Sample(labels, exemplar.value, round(exemplar.timestamp, 3))


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def _values(label_names: list[str], labels: Labels) -> list[str]:
    given = dict(labels)
    return [given.get(name, "") for name in label_names]


def families_to_render(
    families: Families, exemplars: dict[Key, Exemplar] | None = None
) -> Iterator[Metric]:
    """Every catalogue family, in catalogue order, data or not (its HELP and TYPE lines
    at least); unlabelled counters, up-down counters and histograms, and the fixed label
    values of `_ZERO_WHEN_EMPTY`, appear at 0 before their first event. `exemplars`
    go on the buckets they were measured in, where that series is exposed."""
    everything = {**families, **derived_rates(families)}
    by_family: dict[str, dict[tuple[Labels, int], Exemplar]] = {}
    for (family, labels, bucket), exemplar in (exemplars or {}).items():
        by_family.setdefault(family, {})[labels, bucket] = exemplar
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
        yield _family(definition, series, by_family.get(name))


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


def render_openmetrics(families: Families, exemplars: dict[Key, Exemplar]) -> bytes:
    """OpenMetrics 1.0 text of the merged families, with `exemplars` on their buckets."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(families_to_render(families, exemplars)))
    body: bytes = openmetrics.generate_latest(registry)  # type: ignore[no-untyped-call]
    return body


def wants_openmetrics(accept: str | None) -> bool:
    """Whether an `Accept` header takes OpenMetrics (Prometheus's prefers it)."""
    for part in (accept or "").split(","):
        media, *parameters = part.split(";")
        if media.strip().lower() != "application/openmetrics-text":
            continue
        weights = [p.split("=", 1)[1] for p in parameters if p.strip().startswith("q=")]
        try:
            return not weights or float(weights[0]) > 0
        except ValueError:
            return True
    return False

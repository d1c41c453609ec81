"""A process's metric state as plain data, and how the states of many processes merge.

A snapshot maps each exposed family (the catalogue's `prometheus_name`) to its series:
`{labels: value}`, where labels is a sorted tuple of `(name, value)` pairs and value is a
float, or a `Histogram` for histograms. Snapshots are what the per-process state files
hold; merging them is pure, so it is unit-tested without processes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeAlias

from semconv import metrics as semconv_metrics
from semconv._definition import InstrumentKind, MetricDefinition

if TYPE_CHECKING:
    from crm_otel.metrics._exemplars import Exemplar, Key

Labels: TypeAlias = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Histogram:
    """Cumulative bucket counts (one more than `bounds`, the last is +Inf), sum and count."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    total: float

    @property
    def count(self) -> int:
        return sum(self.counts)


Value: TypeAlias = float | Histogram
Families: TypeAlias = dict[str, dict[Labels, Value]]


class Merge(Enum):
    """How the series of one family combine across the processes of a group."""

    SUM = "sum"
    """Counters and histograms: every process counts, exited ones too (kept in the archive)."""
    LIVE_SUM = "live_sum"
    """Up-down counters and per-process gauges: the sum over processes still alive."""
    LATEST = "latest"
    """A gauge every process observes from the same source (Redis): the freshest one."""
    MAX = "max"
    """A counter every process observes from the same source (Redis's `evicted_keys`):
    the largest live value, so scrapes answered by workers that polled at different
    times never see it go backwards."""
    DERIVED = "derived"
    """Not recorded: computed at scrape time from other merged families (hit rates)."""


_M = semconv_metrics
OBSERVED: frozenset[str] = frozenset(
    d.prometheus_name
    for d in (
        _M.CACHE_EVICTIONS,
        _M.CELERY_QUEUE_LENGTH,
        _M.PROCESS_CPU_TIME,
        _M.PROCESS_RESIDENT_MEMORY,
        _M.EXPORT_DROPPED,
        _M.EXPORT_ITEMS,
        _M.METRICS_EXEMPLARS_DROPPED,
        # The tail sampler reports its own per-process totals, reset in a forked child.
        _M.SAMPLING_TRACES,
        _M.SAMPLING_SPANS_BUFFERED,
        _M.SAMPLING_FORCED_DECISIONS,
        _M.SAMPLING_LATE_SPANS,
        _M.SAMPLING_SPANS_DROPPED,
        _M.SAMPLING_HELD_TRACES,
        _M.SAMPLING_SPANS_HELD,
        _M.SAMPLING_UPSTREAM_RELEASED,
        _M.SAMPLING_RELAY_ERRORS,
        # Cost by org: a forked child's table starts empty.
        *_M.TENANT_FAMILIES,
    )
)
"""Families recorded by observable callbacks: a forked child observes its own value, so
no inherited baseline is subtracted from them."""

_OVERRIDES: dict[str, Merge] = {
    _M.CACHE_EVICTIONS.prometheus_name: Merge.MAX,
    _M.CELERY_QUEUE_LENGTH.prometheus_name: Merge.LATEST,
    _M.PROCESS_RESIDENT_MEMORY.prometheus_name: Merge.LIVE_SUM,
    _M.CACHE_HIT_RATE.prometheus_name: Merge.DERIVED,
    _M.SEARCH_CACHE_HIT_RATE.prometheus_name: Merge.DERIVED,
    _M.LEAD_SCORE_CACHE_HIT_RATE.prometheus_name: Merge.DERIVED,
}


def merge_policy(definition: MetricDefinition) -> Merge:
    """The merge policy of a catalogue family."""
    override = _OVERRIDES.get(definition.prometheus_name)
    if override is not None:
        return override
    if definition.kind in (InstrumentKind.COUNTER, InstrumentKind.HISTOGRAM):
        return Merge.SUM
    return Merge.LIVE_SUM


POLICY: dict[str, Merge] = {d.prometheus_name: merge_policy(d) for d in semconv_metrics.CATALOGUE}
"""Merge policy by exposed family name."""


def from_metrics_data(data: Any) -> Families:
    """The catalogue families found in the SDK's `MetricsData` (other metrics are skipped)."""
    families: Families = {}
    if data is None:
        return families
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                definition = semconv_metrics.BY_NAME.get(metric.name)
                if definition is None:
                    continue
                series = families.setdefault(definition.prometheus_name, {})
                for point in metric.data.data_points:
                    labels = labels_of(point.attributes)
                    if hasattr(point, "bucket_counts"):
                        value: Value = Histogram(
                            tuple(float(b) for b in point.explicit_bounds),
                            tuple(int(c) for c in point.bucket_counts),
                            float(point.sum),
                        )
                    else:
                        value = float(point.value)
                    series[labels] = add(series[labels], value) if labels in series else value
    return families


def labels_of(attributes: Mapping[str, Any] | None) -> Labels:
    """Sorted `(name, value)` pairs with every value as a string."""
    return tuple(sorted((str(k), str(v)) for k, v in (attributes or {}).items()))


def add(a: Value, b: Value) -> Value:
    """The sum of two values of one series; raises ValueError when their shapes differ."""
    if isinstance(a, Histogram) and isinstance(b, Histogram):
        if a.bounds != b.bounds:
            raise ValueError(f"histogram bounds differ: {a.bounds} and {b.bounds}")
        return Histogram(
            a.bounds,
            tuple(x + y for x, y in zip(a.counts, b.counts, strict=True)),
            a.total + b.total,
        )
    if isinstance(a, Histogram) or isinstance(b, Histogram):
        raise ValueError("a histogram and a number cannot be added")
    return a + b


def _negate(value: Value) -> Value:
    if isinstance(value, Histogram):
        return Histogram(value.bounds, tuple(-c for c in value.counts), -value.total)
    return -value


def subtract(current: Families, baseline: Families, families: Iterable[str]) -> Families:
    """`current` minus `baseline` for the named families; other families are left as they are."""
    names = set(families)
    result: Families = {}
    for name, series in current.items():
        base = baseline.get(name) if name in names else None
        if not base:
            result[name] = dict(series)
            continue
        out: dict[Labels, Value] = {}
        for labels, value in series.items():
            previous = base.get(labels)
            out[labels] = value if previous is None else add(value, _negate(previous))
        result[name] = out
    return result


def sum_into(target: Families, source: Families, families: Iterable[str]) -> list[str]:
    """Add `source`'s named families into `target`; returns the problems (shape mismatches)."""
    problems: list[str] = []
    for name in families:
        for labels, value in source.get(name, {}).items():
            series = target.setdefault(name, {})
            try:
                series[labels] = add(series[labels], value) if labels in series else value
            except ValueError as exc:
                problems.append(f"{name}{dict(labels)}: {exc}")
    return problems


@dataclass(frozen=True)
class ProcessState:
    """One process's snapshot as read from (or about to be written to) its state file."""

    pid: int
    token: str
    written: float
    families: Families
    exemplars: Mapping[Key, Exemplar] = field(default_factory=dict)


def merge(archive: Families, live: list[ProcessState]) -> tuple[Families, list[str]]:
    """Merge the archive (exited processes) with the live processes' states, by policy."""
    merged: Families = {}
    problems: list[str] = []
    summed = [name for name, policy in POLICY.items() if policy is Merge.SUM]
    live_summed = [name for name, policy in POLICY.items() if policy is Merge.LIVE_SUM]
    problems += sum_into(merged, archive, summed)
    for state in live:
        problems += sum_into(merged, state.families, summed + live_summed)
    for name, policy in POLICY.items():
        if policy is Merge.LATEST:
            freshest = max(
                (s for s in live if s.families.get(name)), key=lambda s: s.written, default=None
            )
            if freshest is not None:
                merged[name] = dict(freshest.families[name])
        elif policy is Merge.MAX:
            for state in live:
                for labels, value in state.families.get(name, {}).items():
                    series = merged.setdefault(name, {})
                    current = series.get(labels)
                    if not isinstance(current, float) or (
                        isinstance(value, float) and value > current
                    ):
                        series[labels] = value
    return merged, problems


OPEN_LABELS: frozenset[str] = frozenset({"workflow", "action_type", "type", "task"})
"""Labels whose values come from the app (workflow names, task names, ...): capped."""


def fold_open_labels(families: Families, cap: int, first: Families | None = None) -> Families:
    """At most `cap` values of each open-ended label per family; the rest become `other`.

    Each process caps its own values, but recycled workers each bring a fresh set: this
    caps what the group exposes and archives. Values already in `first` (the archive)
    keep their place, then new ones in sorted order, so a value named on one scrape stays
    named on the next (only at the cap's edge can a live value move to `other` once).
    """
    result: Families = {}
    for name, series in families.items():
        keys = {k for labels in series for k, _ in labels} & OPEN_LABELS
        if not keys:
            result[name] = series
            continue
        known = (first or {}).get(name, {})
        allowed: dict[str, set[str]] = {}
        for key in keys:
            order = list(dict.fromkeys(v for labels in known for k, v in labels if k == key))
            fresh = {v for labels in series for k, v in labels if k == key} - set(order)
            named = [v for v in [*order, *sorted(fresh)] if v != semconv_metrics.OTHER]
            allowed[key] = set(named[:cap])
        folded: dict[Labels, Value] = {}
        for labels, value in series.items():
            new = tuple(
                (k, v if k not in allowed or v in allowed[k] else semconv_metrics.OTHER)
                for k, v in labels
            )
            folded[new] = add(folded[new], value) if new in folded else value
        result[name] = folded
    return result


def absorb(archive: Families, exited: list[ProcessState]) -> tuple[Families, list[str]]:
    """The archive with the summed families of processes that exited added to it."""
    result: Families = {name: dict(series) for name, series in archive.items()}
    problems: list[str] = []
    summed = [name for name, policy in POLICY.items() if policy is Merge.SUM]
    for state in exited:
        problems += sum_into(result, state.families, summed)
    return result, problems


# --- JSON form of the state files -----------------------------------------------------------


def families_to_json(families: Families) -> dict[str, Any]:
    """A JSON-ready form of `families`."""
    out: dict[str, Any] = {}
    for name, series in families.items():
        rows: list[list[Any]] = []
        for labels, value in series.items():
            if isinstance(value, Histogram):
                rows.append(
                    [
                        [list(p) for p in labels],
                        {"b": value.bounds, "c": value.counts, "s": value.total},
                    ]
                )
            else:
                rows.append([[list(p) for p in labels], value])
        out[name] = rows
    return out


def families_from_json(data: Mapping[str, Any]) -> Families:
    """The inverse of `families_to_json`; raises ValueError/TypeError/KeyError on bad input."""
    families: Families = {}
    for name, rows in data.items():
        series: dict[Labels, Value] = {}
        for raw_labels, raw_value in rows:
            labels = tuple((str(k), str(v)) for k, v in raw_labels)
            if isinstance(raw_value, dict):
                series[labels] = Histogram(
                    tuple(float(b) for b in raw_value["b"]),
                    tuple(int(c) for c in raw_value["c"]),
                    float(raw_value["s"]),
                )
            else:
                series[labels] = float(raw_value)
        families[str(name)] = series
    return families

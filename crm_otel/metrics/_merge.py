"""How the states of a group's processes merge into what one scrape exposes.

Each family has a merge policy, taken from its catalogue definition; merging is pure, so
it is unit-tested without processes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from crm_otel.metrics._values import Families, Labels, Value, add, sum_into
from semconv import metrics as semconv_metrics
from semconv._definition import InstrumentKind, MetricDefinition

if TYPE_CHECKING:
    from crm_otel.metrics._exemplars import Exemplar, Key


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
OBSERVED: frozenset[str] = frozenset(d.prometheus_name for d in _M.CATALOGUE if d.observable)
"""Families reported at collection from the process's own state (observable callbacks,
the cost-by-org table): a forked child reports its own value, so no inherited baseline is
subtracted from them."""

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

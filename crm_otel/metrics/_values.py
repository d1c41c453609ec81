"""Metric values as plain data, and their arithmetic.

A process's families map each exposed family (the catalogue's `prometheus_name`) to its
series: `{labels: value}`, where labels is a sorted tuple of `(name, value)` pairs and
value is a float, or a `Histogram` for histograms.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

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

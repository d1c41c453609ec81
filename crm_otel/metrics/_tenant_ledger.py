"""Cost by org across the processes of a group: the top N named, the rest in `other`.

The merged files give each org's cumulative cost summed over processes. A scrape names
the top N orgs by busy time (request plus task seconds) and exposes, per family:

- for each named org, what it used *while named* (the increases of its merged value
  since it was last seen; on its first naming, as much of its history as `other` has
  gained since the previous scrape, all of it on a group's first scrape);
- `none` as merged (work with no org);
- `other`: the total minus everything above, so every family sums to its total.

An org that leaves the top N keeps its series, frozen at its value, and resumes counting
if it returns; at most N orgs are frozen, and beyond that the one frozen longest is
retired: its series ends and its count is in `other` from then on (one step up in
`other`, never a step down anywhere). So no series goes backwards and `rate()` over any
of them, or over their sum, stays true. The ledger (named, frozen, what each exposed)
lives in the group's `tenants.json`, read and written under the scrape's exclusive lock,
so every process of the group answers with the same orgs.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

from crm_otel.metrics._values import Families, Histogram, Labels, Value
from semconv.metrics import (
    OTHER,
    TENANT_FAMILIES,
    TENANT_NONE,
    TENANT_REQUEST_TIME,
    TENANT_TASK_TIME,
    TENANT_TELEMETRY_BYTES,
)

LEDGER = "tenants.json"
NAMES: tuple[str, ...] = tuple(d.prometheus_name for d in TENANT_FAMILIES)
COST: tuple[str, ...] = (TENANT_REQUEST_TIME.prometheus_name, TENANT_TASK_TIME.prometheus_name)
RESERVED = frozenset({OTHER, TENANT_NONE})


def capacity_for(top_n: int) -> int:
    """Orgs a process (and the archive) tracks exactly for a top `top_n`: ten times as
    many, at least 100."""
    return max(100, 10 * top_n)


FIXED_REST: dict[str, tuple[Labels, ...]] = {
    TENANT_TELEMETRY_BYTES.prometheus_name: ((("signal", "traces"),), (("signal", "logs"),)),
}
"""Labels besides `org` known up front: `other` is exposed for each from the first scrape
(at 0), so every tenant family has a series for `rate()` before its first event."""

SeriesKey = tuple[str, Labels]
"""A family and its labels other than `org`."""


@dataclass
class Ledger:
    """What earlier scrapes of the group exposed."""

    named: list[str] = field(default_factory=list)
    frozen: list[str] = field(default_factory=list)
    books: dict[SeriesKey, dict[str, list[float]]] = field(default_factory=dict)
    """Per series: org -> [value exposed, highest merged value seen]."""
    others: dict[SeriesKey, float] = field(default_factory=dict)
    """Per series: the `other` value last exposed."""

    def to_json(self) -> dict[str, Any]:
        return {
            "named": self.named,
            "frozen": self.frozen,
            "books": [[n, [list(p) for p in r], b] for (n, r), b in self.books.items()],
            "others": [[n, [list(p) for p in r], v] for (n, r), v in self.others.items()],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Ledger:
        def key(name: Any, rest: Any) -> SeriesKey:
            return str(name), tuple((str(k), str(v)) for k, v in rest)

        return cls(
            [str(o) for o in data["named"]],
            [str(o) for o in data["frozen"]],
            {
                key(n, r): {str(o): [float(e), float(s)] for o, (e, s) in b.items()}
                for n, r, b in data["books"]
            },
            {key(n, r): float(v) for n, r, v in data["others"]},
        )


def costs(families: Families) -> dict[str, float]:
    """Busy seconds (requests plus tasks) by org, reserved labels left out."""
    total: dict[str, float] = {}
    for name in COST:
        for labels, value in families.get(name, {}).items():
            org = dict(labels).get("org", OTHER)
            if org not in RESERVED and isinstance(value, float):
                total[org] = total.get(org, 0.0) + value
    return total


def expose(families: Families, ledger: Ledger, top_n: int) -> Families:
    """`families` with the tenant families folded to the top `top_n` orgs; updates `ledger`."""
    cost = costs(families)
    named = sorted(cost, key=lambda org: (-cost[org], org))[:top_n]
    tracked = set(ledger.named) | set(ledger.frozen)
    frozen = [o for o in [*ledger.frozen, *ledger.named] if o not in named and o in tracked]
    frozen = list(dict.fromkeys(frozen))[-top_n:] if top_n else []
    keep = set(named) | set(frozen)
    result: Families = {name: series for name, series in families.items() if name not in NAMES}
    for name in NAMES:
        groups: dict[Labels, dict[str, float]] = {}
        for labels, value in families.get(name, {}).items():
            if isinstance(value, Histogram):
                continue
            org = dict(labels).get("org", OTHER)
            rest = tuple(p for p in labels if p[0] != "org")
            by_org = groups.setdefault(rest, {})
            by_org[org] = by_org.get(org, 0.0) + value
        for key in [k for k in ledger.books if k[0] == name]:
            groups.setdefault(key[1], {})
        for rest in FIXED_REST.get(name, ((),)):
            groups.setdefault(rest, {})
        out: dict[Labels, Value] = {}
        for rest, raw in groups.items():
            key = (name, rest)
            book, other = _settle(
                raw, ledger.books.get(key, {}), ledger.others.get(key, 0.0), named, keep
            )
            ledger.books[key], ledger.others[key] = book, other
            for org, (exposed, _) in book.items():
                out[_labels(org, rest)] = exposed
            if TENANT_NONE in raw:
                out[_labels(TENANT_NONE, rest)] = raw[TENANT_NONE]
            out[_labels(OTHER, rest)] = other
        result[name] = out
    ledger.named, ledger.frozen = named, frozen
    return result


def _settle(
    raw: dict[str, float],
    book: dict[str, list[float]],
    previous_other: float,
    named: list[str],
    keep: set[str],
) -> tuple[dict[str, list[float]], float]:
    total = sum(raw.values())
    named_set = set(named)
    settled: dict[str, list[float]] = {}
    for org, (exposed, seen) in book.items():
        if org not in keep:
            continue  # retired: what it exposed is in `other` from now on
        current = raw.get(org, 0.0)
        if org in named_set and current > seen:
            exposed += current - seen
        settled[org] = [exposed, max(seen, current)]
    spent = sum(e for e, _ in settled.values()) + raw.get(TENANT_NONE, 0.0)
    for org in named:
        if org in settled:
            continue
        current = raw.get(org, 0.0)
        # Only what `other` gained since the last scrape can move to a newcomer.
        exposed = min(current, max(0.0, total - spent - previous_other))
        settled[org] = [exposed, current]
        spent += exposed
    # Never below what was exposed: only damaged files (totals going back) could ask it.
    return settled, max(previous_other, total - spent)


def _labels(org: str, rest: Labels) -> Labels:
    return tuple(sorted((("org", org), *rest)))


def bound(families: Families, keep: int) -> Families:
    """At most `keep` orgs per tenant family (the busiest), the rest summed into `other`:
    what an archive of exited processes holds stays bounded."""
    cost = costs(families)
    kept = set(sorted(cost, key=lambda org: (-cost[org], org))[:keep]) | RESERVED
    result = dict(families)
    for name in NAMES:
        series = families.get(name)
        if not series:
            continue
        folded: dict[Labels, Value] = {}
        for labels, value in series.items():
            if isinstance(value, Histogram):
                continue
            if dict(labels).get("org") not in kept:
                labels = tuple((k, OTHER if k == "org" else v) for k, v in labels)
            previous = folded.get(labels)
            folded[labels] = previous + value if isinstance(previous, float) else value
        result[name] = folded
    return result


def load(directory: str) -> Ledger:
    """The group's ledger (a new one when missing or unreadable)."""
    try:
        with open(os.path.join(directory, LEDGER), encoding="utf-8") as handle:
            return Ledger.from_json(json.load(handle))
    except (OSError, ValueError, TypeError, KeyError):
        return Ledger()


def save(directory: str, ledger: Ledger) -> None:
    """Write the group's ledger by atomic rename (a full disk costs the next scrape its
    memory of what was shown, never this scrape)."""
    path = os.path.join(directory, LEDGER)
    temporary = path + f".{os.getpid()}.tmp"
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(ledger.to_json(), handle, separators=(",", ":"))
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)

"""Exemplars that name only traces the tail sampler kept.

A latency measurement taken inside a trace becomes a candidate of its histogram bucket,
held per trace until the tail sampler decides that trace: kept, its candidates become
the bucket's exemplars; dropped, they are discarded. Confirmed exemplars go into the
process's state file and are merged across processes at scrape time (one per bucket).
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import SpanContext, get_current_span

from crm_otel.metrics._values import Labels, labels_of
from sampling import Reason
from sampling._fork import register_at_fork

MAX_PENDING_TRACES = 1000
"""Undecided traces holding candidates per process; beyond it the oldest one's go."""
MAX_CANDIDATES_PER_TRACE = 32
"""Candidate buckets per trace (a request running many queries); later ones are turned away."""
MAX_EXEMPLARS = 2000
"""Confirmed exemplars per process, and per scrape after the merge; the stalest go first."""
KEPT_REMEMBERED = 1000
"""Recently kept traces remembered, so a measurement ending after its trace's decision counts."""
STICKY_S = 60.0
"""An error's or slow trace's exemplar keeps its bucket against plain ones this long."""

Key: TypeAlias = tuple[str, Labels, int]
"""(family, series labels, bucket index: `len(bounds)` is +Inf)."""
_Candidate: TypeAlias = tuple[int, float, float]
"""(span id, value, unix time)."""
_PendingKey: TypeAlias = tuple[str, tuple[tuple[str, Any], ...], int]
"""A `Key` with the attributes as given: sorted into labels only if the trace is kept."""
_INTERESTING = frozenset({Reason.ERROR, Reason.SLOW})


@dataclass(frozen=True)
class Exemplar:
    """One bucket's exemplar: the kept trace and span it was measured in."""

    trace_id: str
    span_id: str
    value: float
    timestamp: float
    interesting: bool
    """Kept for an error or for being slow (shown in preference to baseline traces)."""


def preferred(a: Exemplar, b: Exemplar) -> Exemplar:
    """The one a bucket shows: an error's or slow trace's over a plain one taken less than
    `STICKY_S` later, otherwise the newer."""
    if a.interesting != b.interesting:
        special, plain = (a, b) if a.interesting else (b, a)
        return special if plain.timestamp - special.timestamp < STICKY_S else plain
    return a if a.timestamp >= b.timestamp else b


class ExemplarStore:
    """This process's candidates (per undecided trace) and confirmed exemplars (per bucket).

    `offer` runs on the request path; `decided` is the tail sampler's decision listener.
    Both do their bookkeeping under one lock and call nothing out while holding it.
    """

    def __init__(self) -> None:
        self.listening = False
        """Set once a tail sampler tells its decisions here; until then nothing is held
        (no trace exporter, or tail sampling off: no trace would ever be confirmed)."""
        self._reset()
        register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        """Fresh state (at creation, and in a forked child: the parent's are the parent's)."""
        self._lock = threading.Lock()
        self._pending: OrderedDict[int, dict[_PendingKey, _Candidate]] = OrderedDict()
        self._kept: OrderedDict[int, bool] = OrderedDict()
        self._confirmed: OrderedDict[Key, Exemplar] = OrderedDict()
        self.turned_away = 0
        """Candidates discarded by a cap (pending traces, per trace) before their decision."""

    def offer(
        self,
        family: str,
        bounds: tuple[float, ...],
        value: float,
        attributes: Mapping[str, Any] | None,
        span_context: SpanContext | None = None,
    ) -> None:
        """Note `value` as a candidate of its bucket, in the trace of `span_context` (by
        default the current span's); nothing outside a trace."""
        if not self.listening:
            return
        context = span_context or get_current_span().get_span_context()
        if not context.is_valid:
            return
        trace_id = context.trace_id
        items = tuple(attributes.items()) if attributes else ()
        key = (family, items, bisect_left(bounds, value))
        candidate = (context.span_id, float(value), time.time())
        with self._lock:
            interesting = self._kept.get(trace_id)
            if interesting is not None:
                self._confirm(trace_id, key, candidate, interesting)
                return
            pending = self._pending.get(trace_id)
            if pending is None:
                if len(self._pending) >= MAX_PENDING_TRACES:
                    self.turned_away += len(self._pending.popitem(last=False)[1])
                pending = self._pending[trace_id] = {}
            if key in pending or len(pending) < MAX_CANDIDATES_PER_TRACE:
                pending[key] = candidate
            else:
                self.turned_away += 1

    def decided(self, trace_id: int, kept: bool, reason: Reason) -> None:
        """The tail sampler decided `trace_id`: confirm its candidates if kept, else drop them."""
        with self._lock:
            candidates = self._pending.pop(trace_id, None)
            if not kept:
                # A later local root of this trace gets a decision of its own.
                self._kept.pop(trace_id, None)
                return
            interesting = reason in _INTERESTING
            self._kept[trace_id] = interesting
            self._kept.move_to_end(trace_id)
            if len(self._kept) > KEPT_REMEMBERED:
                self._kept.popitem(last=False)
            for key, candidate in (candidates or {}).items():
                self._confirm(trace_id, key, candidate, interesting)

    def _confirm(
        self, trace_id: int, pending: _PendingKey, candidate: _Candidate, interesting: bool
    ) -> None:
        family, items, bucket = pending
        key = (family, labels_of(dict(items)), bucket)
        span_id, value, timestamp = candidate
        new = Exemplar(f"{trace_id:032x}", f"{span_id:016x}", value, timestamp, interesting)
        current = self._confirmed.get(key)
        if current is not None and preferred(new, current) is current:
            return
        self._confirmed[key] = new
        self._confirmed.move_to_end(key)
        if len(self._confirmed) > MAX_EXEMPLARS:
            self._confirmed.popitem(last=False)

    def observe_dropped(self, options: CallbackOptions) -> list[Observation]:
        """Callback of `crm_otel_metrics_exemplars_dropped_total`."""
        return [Observation(self.turned_away)]

    def confirmed(self) -> dict[Key, Exemplar]:
        """A copy of this process's confirmed exemplars."""
        with self._lock:
            return dict(self._confirmed)


def merge_exemplars(states: Iterable[Mapping[Key, Exemplar]]) -> dict[Key, Exemplar]:
    """One exemplar per bucket over the processes' (`preferred`), the `MAX_EXEMPLARS` newest."""
    merged: dict[Key, Exemplar] = {}
    for state in states:
        for key, exemplar in state.items():
            current = merged.get(key)
            merged[key] = exemplar if current is None else preferred(exemplar, current)
    if len(merged) > MAX_EXEMPLARS:
        newest = sorted(merged.items(), key=lambda item: item[1].timestamp)[-MAX_EXEMPLARS:]
        merged = dict(newest)
    return merged


def exemplars_to_json(exemplars: Mapping[Key, Exemplar]) -> list[list[Any]]:
    """A JSON-ready form of `exemplars`."""
    return [
        [family, [list(p) for p in labels], bucket, *_fields(e)]
        for (family, labels, bucket), e in exemplars.items()
    ]


def _fields(e: Exemplar) -> tuple[str, str, float, float, bool]:
    return e.trace_id, e.span_id, e.value, e.timestamp, e.interesting


def exemplars_from_json(rows: Iterable[Any]) -> dict[Key, Exemplar]:
    """The inverse of `exemplars_to_json`; raises ValueError/TypeError on bad input."""
    out: dict[Key, Exemplar] = {}
    for family, labels, bucket, trace_id, span_id, value, timestamp, interesting in rows:
        key = (str(family), tuple((str(k), str(v)) for k, v in labels), int(bucket))
        out[key] = Exemplar(
            str(trace_id), str(span_id), float(value), float(timestamp), bool(interesting)
        )
    return out


class ExemplarHistogram:
    """An SDK histogram that also offers each measurement to the exemplar store (if any)."""

    def __init__(
        self, histogram: Any, family: str, bounds: tuple[float, ...], store: ExemplarStore | None
    ) -> None:
        self._histogram = histogram
        self._family = family
        self._bounds = bounds
        self._store = store

    def record(
        self,
        amount: float,
        attributes: Mapping[str, Any] | None = None,
        *,
        span_context: SpanContext | None = None,
    ) -> None:
        """Record `amount`; `span_context` names the trace when it is not the current one."""
        self._histogram.record(amount, attributes)
        if self._store is not None:
            try:
                self._store.offer(self._family, self._bounds, amount, attributes, span_context)
            except Exception:  # an exemplar is never worth a failed request
                self._store.turned_away += 1

"""Cost by org in one process: what each request and task used, in a bounded table.

When a request or task ends, its usage (`crm_otel._usage`) goes into the process's
`TenantTable` under the org that the request settled on or the task carried. The table
keeps at most `capacity` orgs. A new org waits in probation (the oldest there makes room
first); an org that comes back is protected, and the protected are ordered space-saving
style by busy time (request plus task seconds), the least busy going back to probation
when more than half the table is protected. An org that leaves moves its values to
`other`, so the table's sums stay exactly the totals, and a flood of one-off orgs never
pushes out the ones that return. Spans that end after their
request or task (the server span, the task span) and the kept spans the exporter sees are
attributed through a bounded map from trace id to org.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextvars import Token
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from crm_otel import _usage
from crm_otel._usage import (
    DB_QUERIES,
    DB_S,
    KEPT,
    REQUEST_S,
    REQUESTS,
    SLOTS,
    SPANS,
    TASK_S,
    TASKS,
    TRACE_BYTES,
    Usage,
    current_org,
    note,
    org_label,
    usage_var,
)
from crm_otel.metrics._values import Families, Labels
from sampling._fork import register_at_fork
from semconv import metrics as semconv_metrics
from semconv.metrics import OTHER, TENANT_NONE

_M = semconv_metrics
__all__ = [
    "DB_QUERIES",
    "DB_S",
    "REQUESTS",
    "SLOTS",
    "TASKS",
    "TASK_S",
    "TenantSpanExporter",
    "TenantSpanProcessor",
    "TenantTable",
    "begin",
    "current_org",
    "finish",
    "install",
    "note",
    "org_label",
    "table",
]

FAMILY_OF_SLOT: tuple[tuple[str, Labels], ...] = (
    (_M.TENANT_REQUESTS.prometheus_name, ()),
    (_M.TENANT_REQUEST_TIME.prometheus_name, ()),
    (_M.TENANT_DB_TIME.prometheus_name, ()),
    (_M.TENANT_DB_QUERIES.prometheus_name, ()),
    (_M.TENANT_TASKS.prometheus_name, ()),
    (_M.TENANT_TASK_TIME.prometheus_name, ()),
    (_M.TENANT_SPANS_RECORDED.prometheus_name, ()),
    (_M.TENANT_SPANS_KEPT.prometheus_name, ()),
    (_M.TENANT_LOG_LINES.prometheus_name, ()),
    (_M.TENANT_TELEMETRY_BYTES.prometheus_name, (("signal", "traces"),)),
    (_M.TENANT_TELEMETRY_BYTES.prometheus_name, (("signal", "logs"),)),
)
"""The exposed family (and fixed labels besides `org`) of each slot."""

MAX_TRACES_MAPPED = 4096
"""Trace ids remembered with their request's or task's usage (so its org), for spans that
end after it and for kept spans at export (seconds later); the oldest go first."""


class TenantTable:
    """This process's cumulative cost by org: at most `capacity` orgs, plus `other` and
    `none`, whose sums over org equal what the process recorded in all."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity: expected a whole number of at least 1, got {capacity!r}")
        self.capacity = capacity
        self._protected_cap = max(1, capacity // 2)
        self._reset()
        register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        # A forked child starts empty: its parent's values stay in the parent's file.
        # One lock over rows, priorities and the trace map; nothing calls out under it.
        self._lock = threading.Lock()
        self._rows: dict[str, list[float]] = {}
        self._priority: dict[str, float] = {}
        self._probation: dict[str, None] = {}
        self._other = [0.0] * SLOTS
        self._none = [0.0] * SLOTS
        self._traces: dict[int, Usage | str | None] = {}
        self.evictions = 0

    def add(self, org: str | None, values: Sequence[float]) -> None:
        """Add `values` (one per slot) to `org` (None: no org)."""
        with self._lock:
            self._add_locked(org, values)

    def _add_locked(self, org: str | None, values: Sequence[float]) -> None:
        work = values[REQUESTS] + values[TASKS]
        row: list[float] | None
        if org is None:
            row = self._none
        elif (row := self._rows.get(org)) is not None:
            if work:
                self._priority[org] += values[REQUEST_S] + values[TASK_S]
                if org in self._probation:
                    self._promote(org)
        else:
            row = self._admit(org)
            self._priority[org] += values[REQUEST_S] + values[TASK_S]
        for slot, value in enumerate(values):
            if value:
                row[slot] += value

    def _admit(self, org: str) -> list[float]:
        if len(self._rows) >= self.capacity:
            # Orgs seen once wait in probation and go first, oldest first, so a stream of
            # one-off orgs never pushes out an org that came back.
            if self._probation:
                victim = next(iter(self._probation))
                del self._probation[victim]
            else:
                victim = min(self._priority, key=self._priority.__getitem__)
            del self._priority[victim]
            for slot, value in enumerate(self._rows.pop(victim)):
                self._other[slot] += value
            self.evictions += 1
        row = [0.0] * SLOTS
        self._rows[org] = row
        self._priority[org] = 0.0
        self._probation[org] = None
        return row

    def _promote(self, org: str) -> None:
        del self._probation[org]
        if len(self._rows) - len(self._probation) > self._protected_cap:
            # Space-saving order among the protected: the least busy goes back to
            # probation, its values kept, so a late heavy org can take its place.
            protected = (o for o in self._priority if o not in self._probation)
            demoted = min(protected, key=self._priority.__getitem__)
            self._probation[demoted] = None

    def remember_trace(self, trace_id: int, owner: Usage | str | None) -> None:
        """Note a trace's request or task: its usage while it runs (its org once known),
        its org once it ended."""
        with self._lock:
            self._remember_locked(trace_id, owner)

    def _remember_locked(self, trace_id: int, owner: Usage | str | None) -> None:
        traces = self._traces
        traces.pop(trace_id, None)
        traces[trace_id] = owner
        if len(traces) > MAX_TRACES_MAPPED:
            del traces[next(iter(traces))]

    def add_by_trace(self, trace_id: int, values: Sequence[float]) -> None:
        """Add `values` to the org of a trace (`none` when the trace is not known)."""
        with self._lock:
            owner = self._traces.get(trace_id)
            self._add_locked(owner.org if isinstance(owner, Usage) else owner, values)

    def snapshot(self) -> Families:
        """The table as exposed families (labels `org`, plus `signal` for bytes)."""
        with self._lock:
            rows = [(org, list(row)) for org, row in self._rows.items()]
            rows += [(OTHER, list(self._other)), (TENANT_NONE, list(self._none))]
        families: Families = {name: {} for name, _ in FAMILY_OF_SLOT}
        for org, row in rows:
            for slot, value in enumerate(row):
                if value:
                    name, extra = FAMILY_OF_SLOT[slot]
                    families[name][tuple(sorted((("org", org), *extra)))] = value
        return families

    def size(self) -> int:
        """Orgs tracked now."""
        return len(self._rows)


_table: TenantTable | None = None


def install(table: TenantTable | None) -> None:
    """Make `table` the one recording goes to (None: recording off)."""
    global _table
    _table = table
    _usage.install_sink(table.add if table is not None else None)


def table() -> TenantTable | None:
    """The table recording goes to, if any."""
    return _table


def begin(org: str | None = None) -> tuple[Usage, Token[Usage | None]] | None:
    """Open the usage of a request or task (None when recording is off)."""
    table = _table
    if table is None:
        return None
    usage = Usage(org)
    trace_id = trace.get_current_span().get_span_context().trace_id
    if trace_id:  # spans exported before it ends (head-sampled ones) find their org
        table.remember_trace(trace_id, usage)
    return usage, usage_var.set(usage)


def finish(
    opened: tuple[Usage, Token[Usage | None]] | None, slot: int | None, seconds: float | None
) -> None:
    """Close a usage into the table under its org: one request or task (`slot` REQUESTS
    or TASKS, None: not counted) that took `seconds` (None: not timed)."""
    table = _table
    if opened is None or table is None:
        return
    usage, token = opened
    try:
        usage_var.reset(token)
    except ValueError:  # closed in another context (eager tasks run inline)
        usage_var.set(None)
    if slot is not None:
        usage.values[slot] += 1
        if seconds is not None:
            usage.values[slot + 1] += seconds
    trace_id = trace.get_current_span().get_span_context().trace_id
    with table._lock:
        table._add_locked(usage.org, usage.values)
        if trace_id:
            table._remember_locked(trace_id, usage.org)


class TenantSpanProcessor(SpanProcessor):
    """Counts every span as recorded, for the org of the request or task it ended in (or
    of its trace, for spans that end after it)."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        usage = usage_var.get()
        if usage is not None:
            usage.values[SPANS] += 1
            return
        table, context = _table, span.context
        if table is not None and context is not None:
            values = [0.0] * SLOTS
            values[SPANS] = 1
            table.add_by_trace(context.trace_id, values)


class TenantSpanExporter(SpanExporter):
    """Counts the spans handed to `inner` (the kept ones) and their estimated size by org."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        table = _table
        if table is not None:
            try:
                by_trace: dict[int, list[float]] = {}
                for span in spans:
                    context = span.context
                    trace_id = context.trace_id if context is not None else 0
                    values = by_trace.setdefault(trace_id, [0.0] * SLOTS)
                    values[KEPT] += 1
                    values[TRACE_BYTES] += estimated_size(span)
                for trace_id, values in by_trace.items():
                    table.add_by_trace(trace_id, values)
            except Exception:  # counting must never stop an export
                pass
        return self._inner.export(spans)

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


SPAN_OVERHEAD = 80
"""Bytes of a span's OTLP encoding besides its name and attributes (ids, times, kind,
status, framing); the batch's resource and scope are shared and not counted."""


def estimated_size(span: ReadableSpan) -> int:
    """An estimate of a span's OTLP protobuf size, in bytes."""
    size = SPAN_OVERHEAD + len(span.name) + _attributes_size(span.attributes)
    for event in span.events:
        size += 20 + len(event.name) + _attributes_size(event.attributes)
    for link in span.links:
        size += 40 + _attributes_size(link.attributes)
    return size


def _attributes_size(attributes: Any) -> int:
    if not attributes:
        return 0
    size = 0
    for key, value in attributes.items():
        size += 6 + len(key)
        if isinstance(value, str):
            size += len(value)
        elif isinstance(value, (tuple, list)):
            size += sum(len(v) + 2 if isinstance(v, str) else 9 for v in value)
        else:
            size += 8
    return size

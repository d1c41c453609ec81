"""What the request or task being handled has used so far, for cost by org.

A request or task opens a `Usage` (a few floats in a context variable); its database
queries, log lines and spans add to it, and it learns its org (the request's settles only
at its end: DRF users are known after the view). Work outside any request or task goes
straight to the sink, with no org. Kept apart from `crm_otel.metrics` so the Django, Celery
and logging glue can reach it without importing the metrics subsystem.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextvars import ContextVar

from crm_otel._context import request_context_var
from semconv.metrics import OTHER, TENANT_NONE

(
    REQUESTS,
    REQUEST_S,
    DB_S,
    DB_QUERIES,
    TASKS,
    TASK_S,
    SPANS,
    KEPT,
    LOG_LINES,
    TRACE_BYTES,
    LOG_BYTES,
) = range(11)
SLOTS = 11
"""Slots of a usage: counts and seconds, spans recorded and kept, log lines, bytes."""

MAX_ORG_LENGTH = 128

Sink = Callable[[str | None, Sequence[float]], None]


def org_label(org: object) -> str | None:
    """The `org` label value of an org id (None: no org); reserved words are prefixed."""
    if org is None or org == "":
        return None
    text = str(org)[:MAX_ORG_LENGTH]
    return f"org_{text}" if text in (OTHER, TENANT_NONE) else text


class Usage:
    """What one request or task has used so far, and its org once known."""

    __slots__ = ("org", "values")

    def __init__(self, org: str | None = None) -> None:
        self.org = org
        self.values = [0.0] * SLOTS


usage_var: ContextVar[Usage | None] = ContextVar("crm_otel_usage", default=None)
"""The usage of the request or task being handled, if any."""

_sink: Sink | None = None


def install_sink(sink: Sink | None) -> None:
    """Where work outside any request or task goes (None: it is not recorded)."""
    global _sink
    _sink = sink


def set_org(org: object) -> None:
    """The org of the request being handled, as settled at its end."""
    usage = usage_var.get()
    if usage is not None:
        usage.org = org_label(org)


def current_org() -> str | None:
    """The org of the request or task being handled, if known yet."""
    usage = usage_var.get()
    if usage is not None and usage.org is not None:
        return usage.org
    context = request_context_var.get()
    return org_label(context.get("org_id")) if context is not None else None


def note(slot: int, amount: float, other_slot: int, other_amount: float) -> None:
    """Add to two slots of the current usage (outside a request or task: to no org)."""
    usage = usage_var.get()
    if usage is not None:
        usage.values[slot] += amount
        usage.values[other_slot] += other_amount
        return
    sink = _sink
    if sink is not None:
        values = [0.0] * SLOTS
        values[slot] += amount
        values[other_slot] += other_amount
        sink(None, values)

"""Celery glue: correlation ids into tasks, and no span lost when a pool child exits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry import trace

from crm_otel import _usage
from crm_otel._context import (
    CELERY_HEADER,
    CELERY_ORG_HEADER,
    correlation_id_var,
    safe_correlation_id,
)
from crm_otel._providers import flush_all
from semconv import attributes

_tokens: dict[str, Any] = {}


def _nothing(task_id: str | None) -> None:
    return None


def _no_state() -> None:
    return None


_task_ended: Callable[[str | None], None] = _nothing
_write_metrics_state: Callable[[], None] = _no_state


def install(
    task_ended: Callable[[str | None], None] = _nothing,
    write_metrics_state: Callable[[], None] = _no_state,
) -> None:
    """Connect crm-otel's handlers to Celery's signals (after the OTel instrumentation's).

    `task_ended(task_id)` runs once the instrumentation has ended the task's span (the
    logs forget the task's argument values); `write_metrics_state()` writes the process's
    metrics state once its last exports are done (so what they exported or dropped counts).
    """
    global _task_ended, _write_metrics_state
    _task_ended = task_ended
    _write_metrics_state = write_metrics_state
    from celery import signals

    signals.before_task_publish.connect(_carry_correlation_id, weak=False)
    signals.task_prerun.connect(_bind_correlation_id, weak=False)
    signals.task_postrun.connect(_unbind_correlation_id, weak=False)
    # After the instrumentation's own receiver has ended the task's span.
    signals.task_postrun.connect(_forget_task_values, weak=False)
    # A prefork child leaves through os._exit (max_tasks_per_child, pool shrink): atexit
    # hooks never run there, so buffered spans would be lost without this flush.
    signals.worker_process_shutdown.connect(_child_leaving, weak=False)
    signals.worker_shutdown.connect(_flush, weak=False)


def _carry_correlation_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    correlation_id = correlation_id_var.get()
    if headers is not None and correlation_id is not None:
        headers[CELERY_HEADER] = correlation_id
    org = _usage.current_org()
    if headers is not None and org is not None:
        headers[CELERY_ORG_HEADER] = org


def _bind_correlation_id(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    request = getattr(task, "request", None)
    received = getattr(request, CELERY_HEADER, None)
    if isinstance(received, str):
        correlation_id = safe_correlation_id(received)
    else:  # an eager task runs inline, inside the request that sent it
        correlation_id = correlation_id_var.get() or safe_correlation_id(None)
    trace.get_current_span().set_attribute(attributes.CORRELATION_ID, correlation_id)
    if task_id is not None:
        _tokens[task_id] = correlation_id_var.set(correlation_id)


def _unbind_correlation_id(task_id: str | None = None, **_: Any) -> None:
    token = _tokens.pop(task_id, None) if task_id is not None else None
    if token is not None:
        try:
            correlation_id_var.reset(token)
        except ValueError:  # set in another context (eager tasks run inline)
            correlation_id_var.set(None)


def _forget_task_values(task_id: str | None = None, **_: Any) -> None:
    _task_ended(task_id)


def _flush(**_: Any) -> None:
    flush_all()
    _write_metrics_state()


LEAVING_TIMEOUT_MILLIS = 30_000
"""How long a leaving pool child flushes: the SDK's own shutdown bound, longer than an
exporter's timeout, so an export in flight ends (delivered, or counted dropped) before the
metrics state's last write and `os._exit`."""


def _child_leaving(**_: Any) -> None:
    flush_all(LEAVING_TIMEOUT_MILLIS, leaving=True)
    _write_metrics_state()

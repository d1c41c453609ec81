"""Task arguments and results kept out of logs and spans.

Celery's worker logs the arguments of every task it receives (`data.args`), its return
value (`Task x[id] succeeded in 0.01s: <value>`) and, when it fails, its arguments again
and the exception's repr, which often quotes them. Key-based redaction cannot catch a
sign-in code inside a formatted string, so crm-otel rewrites those records before any
handler sees them: arguments and return value are replaced by `[REDACTED]` in the message
and dropped from `data`; the task's name, id, state and runtime stay. The values a task
was called with are also replaced wherever they appear literally in its exception message
and stack trace, in the log line and in the exported copy of the task span's exception
event and status.
Tasks named in `CRM_OTEL_CELERY_LOG_ARGS_TASKS` are left as Celery logs them.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from crm_otel.logs import _state
from crm_otel.logs._redact import REDACTED

TASK_LOGGERS: tuple[str, ...] = ("celery.app.trace", "celery.worker.strategy")
"""Celery's loggers of task receipt, success, failure and retry."""

HIDDEN_FIELDS: tuple[str, ...] = ("args", "kwargs", "return_value")
"""Fields of those records that carry the task's values."""

HIDDEN_SPAN_ATTRIBUTES: tuple[str, ...] = ("celery.args", "celery.kwargs")
"""Span attributes some Celery instrumentations record with the task's arguments."""

_TEXT_FIELDS = ("exc", "traceback")
SPAN_TEXT_ATTRIBUTES: tuple[str, ...] = (
    "celery.retry.reason",
    "exception.message",
    "exception.stacktrace",
)
"""Span and event attributes the values are blanked out of."""
_MIN_LENGTH = 4  # shorter values ("1", "yes") would blank out unrelated text
_MAX_VALUES = 64
_MAX_TASKS = 1024
_MAX_DEPTH = 3  # [args, kwargs], their items, and one level inside those
_VALUES_ATTR = "_crm_otel_task_values"
_DONE_ATTR = "_crm_otel_task_values_done"

_values: dict[str, tuple[str, ...]] = {}
_span_values: weakref.WeakKeyDictionary[ReadableSpan, tuple[str, ...]] = weakref.WeakKeyDictionary()
# Guards `_values` and `_span_values`; nothing is called out while holding it.
_lock = threading.Lock()


def _reset_in_child() -> None:
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_in_child)


def logged_tasks() -> frozenset[str]:
    """Names of the tasks whose arguments may be logged (`CRM_OTEL_CELERY_LOG_ARGS_TASKS`)."""
    return _state.current()[0].celery_log_args_tasks


def _texts(value: Any, depth: int = 0) -> Iterator[str]:
    # Only plain values: str() of a model instance could run a query.
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, (str, int, float)):
        text = str(value)
        if len(text) >= _MIN_LENGTH:
            yield text
            quoted = repr(text)[1:-1]  # how it reads inside a repr (escaped quotes, \n)
            if quoted != text:
                yield quoted
    elif isinstance(value, bytes):
        yield from _texts(repr(value)[2:-1], depth)
    elif depth < _MAX_DEPTH and isinstance(value, Mapping):
        for item in value.values():
            yield from _texts(item, depth + 1)
    elif depth < _MAX_DEPTH and isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from _texts(item, depth + 1)


def remember(task_id: str | None, name: str | None, args: Any, kwargs: Any) -> None:
    """Keep the values a task runs with, to blank them out of its exception text."""
    if not task_id or name in logged_tasks():
        return
    found: set[str] = set()
    for text in _texts([args or (), kwargs or {}]):
        found.add(text)
        if len(found) >= _MAX_VALUES:
            break
    if not found:
        return
    values = tuple(sorted(found, key=len, reverse=True))  # longest first: no partial leftovers
    with _lock:
        while len(_values) >= _MAX_TASKS:  # tasks that never ended: forget the oldest
            del _values[next(iter(_values))]
        _values[task_id] = values


def forget(task_id: str | None) -> None:
    """Drop what `remember` kept for a task (when its span has ended)."""
    if task_id:
        with _lock:
            _values.pop(task_id, None)


def values_of(task_id: Any) -> tuple[str, ...]:
    """The values remembered for a running task, longest first."""
    return _values.get(task_id, ()) if isinstance(task_id, str) else ()


def blank(text: str, values: tuple[str, ...]) -> str:
    """`text` with every occurrence of `values` replaced by `[REDACTED]`."""
    for value in values:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def scrub(record: logging.LogRecord, text: str) -> str:
    """`text` (a record's exception message or stack trace) without its task's values."""
    values = record.__dict__.get(_VALUES_ATTR)
    return blank(text, values) if values else text


def _state_of(fmt: str, context: Mapping[str, Any]) -> str | None:
    if fmt.endswith("received"):
        return "RECEIVED"
    if "succeeded" in fmt:
        return "SUCCESS"
    if "retry" in fmt:
        return "RETRY"
    description = str(context.get("description", ""))
    if description.startswith("raised") or description == "INTERNAL ERROR":
        return "FAILURE"
    return description.upper() or None  # ignored, rejected


def _rewritten(
    context: Mapping[str, Any], values: tuple[str, ...], *, keep_keys: bool
) -> dict[str, Any]:
    rewritten: dict[str, Any] = {}
    for key, value in context.items():
        if key in HIDDEN_FIELDS:
            if keep_keys:  # the format string may name it: keep it formattable
                rewritten[key] = REDACTED
        elif key in _TEXT_FIELDS and isinstance(value, str):
            rewritten[key] = blank(value, values)
        else:
            rewritten[key] = value
    return rewritten


class TaskValuesFilter(logging.Filter):
    """Rewrites Celery's task lines so they carry no argument or return value.

    Put on the loggers in `TASK_LOGGERS` (a logger's filter runs once, before every
    handler: crm-otel's, the app's, the OTel bridge). Always lets the record through.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.__dict__.get(_DONE_ATTR):  # a second filter (install and `LOGGING`)
            return True
        record.__dict__[_DONE_ATTR] = True
        try:
            self._rewrite(record)
        except Exception:  # a record Celery shaped differently: hide it, never break logging
            record.args, record.msg = (), "Celery task record hidden (unexpected shape)"
            record.__dict__.pop("data", None)
            record.exc_info = record.exc_text = None
        return True

    def _rewrite(self, record: logging.LogRecord) -> None:
        context = record.args if isinstance(record.args, Mapping) else None
        data = record.__dict__.get("data")
        source = context if context is not None else data
        if not isinstance(source, Mapping) or source.get("name") in logged_tasks():
            return
        values = values_of(source.get("id"))
        if context is not None:
            record.args = _rewritten(context, values, keep_keys=True)
        if isinstance(data, Mapping):
            rewritten = _rewritten(data, values, keep_keys=False)
            state = _state_of(str(record.msg), data)
            if state is not None:
                rewritten.setdefault("state", state)
            record.data = rewritten
        if values and record.exc_info:
            record.__dict__[_VALUES_ATTR] = values
            # Formatters other than crm-otel's print `exc_text` when it is set.
            record.exc_text = blank(logging.Formatter().formatException(record.exc_info), values)


def install_filters() -> None:
    """Put the filter on Celery's task loggers (again after a logging config, idempotent)."""
    for name in TASK_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, TaskValuesFilter) for f in logger.filters):
            logger.addFilter(TaskValuesFilter())


def remove_filters() -> None:
    """Take the filters back (tests, a second `setup_logging`)."""
    for name in TASK_LOGGERS:
        logger = logging.getLogger(name)
        for found in [f for f in logger.filters if isinstance(f, TaskValuesFilter)]:
            logger.removeFilter(found)


class TaskValuesSpanProcessor(SpanProcessor):
    """Notes, when a Celery task's span ends, the values its exporter copy must not show.

    The span is left as it is; `RedactingSpanExporter` hands the exporter a copy without
    the argument attributes (`celery.args`, `celery.kwargs`, should an instrumentation
    record them) and with the values blanked out of the exception events, the status and
    the retry reason. Must come before the export processor. Keeps one entry per span
    still on its way to the exporter (weakly: dropped spans take theirs with them).
    """

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        attributes = span.attributes or {}
        name = attributes.get("celery.task_name")
        if name is None or name in logged_tasks():
            return
        # Read now: the values are forgotten once the task has run, before the export.
        values = values_of(attributes.get("messaging.message.id"))
        with _lock:
            _span_values[span] = values


def span_values(span: ReadableSpan) -> tuple[str, ...] | None:
    """The values to blank out of `span`'s export copy (maybe none), or None when it is not
    the span of a task whose values are hidden."""
    with _lock:
        return _span_values.get(span)

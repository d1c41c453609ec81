"""The JSON formatter: the fields of docs/design.md on every line, built on python-json-logger."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _PythonJsonFormatter

from crm_otel._context import correlation_id_var, request_context_var
from crm_otel.logs import _state, _tasks
from crm_otel.logs._redact import REDACTED, Redactor

REQUEST_FIELDS: tuple[str, ...] = (
    "user_id",
    "org_id",
    "method",
    "path",
    "remote_addr",
    "user_agent",
)
"""Request context fields, taken from the request being handled when there is one."""

STANDARD_FIELDS: frozenset[str] = frozenset(
    {
        "timestamp",
        "level",
        "message",
        "logger",
        "correlation_id",
        "service",
        "environment",
        "trace_id",
        "span_id",
    }
)
"""Fields `extra=` cannot override: they always describe the record itself."""

SPAN_CONTEXT_ATTR = "_crm_otel_span_context"
"""A record attribute holding a `SpanContext` to report instead of the current span's
(the workflow event names the span that ended, not the one still current)."""

MAX_MESSAGE_CHARS = 16_384
"""A longer message (an app logging a megabyte request line) is cut here, so a line stays
bounded whatever the input."""

_CONTEXT_ATTR = "_crm_otel_context"
_REDACTED_ATTR = "_crm_otel_redacted"
# Django's log_response puts the HttpRequest object in `extra`: its repr carries the full
# path with the query string (possibly a token) and nothing the request context lacks.
_DROPPED_EXTRAS = frozenset({"request"})
_SKIPPED = frozenset(RESERVED_ATTRS) | {"taskName"} | STANDARD_FIELDS | _DROPPED_EXTRAS
_PLAIN = frozenset({str, int, float, bool, type(None)})


class RecordContext:
    """Where a record was logged from: correlation id, span and request, read once per record."""

    __slots__ = ("correlation_id", "request", "span_id", "trace_id")

    def __init__(self, record: logging.LogRecord) -> None:
        span_context = record.__dict__.get(SPAN_CONTEXT_ATTR)
        if span_context is None:
            span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            self.trace_id: str | None = format(span_context.trace_id, "032x")
            self.span_id: str | None = format(span_context.span_id, "016x")
        else:
            self.trace_id = self.span_id = None
        self.correlation_id = correlation_id_var.get()
        self.request: Mapping[str, Any] | None = request_context_var.get()


def record_context(record: logging.LogRecord) -> RecordContext:
    """The context of `record`, captured the first time a handler asks (in the logging thread)."""
    context: RecordContext | None = record.__dict__.get(_CONTEXT_ATTR)
    if context is None:
        context = RecordContext(record)
        setattr(record, _CONTEXT_ATTR, context)
    return context


def error_code(exception: BaseException | None) -> str | None:
    """The application error code an exception carries (`code` or `error_code`), if any."""
    for name in ("error_code", "code"):
        code = getattr(exception, name, None)
        if isinstance(code, (str, int)) and not isinstance(code, bool):
            return str(code)
    return None


class JsonFormatter(_PythonJsonFormatter):
    """One JSON object per record with the standard fields, secrets redacted.

    `service`, `environment` and the redacted keys default to the settings in effect
    (`OTEL_SERVICE_NAME`, `CRM_OTEL_ENVIRONMENT`, `CRM_OTEL_REDACT_KEYS`).
    """

    def __init__(
        self,
        *args: Any,
        service: str | None = None,
        environment: str | None = None,
        redact_keys: tuple[str, ...] | list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        settings, redactor = _state.current()
        self.service = service or settings.service
        self.environment = environment or settings.environment
        self.redactor = redactor if redact_keys is None else Redactor(redact_keys)
        self._second: tuple[int, str] = (-1, "")

    def _timestamp(self, created: float) -> str:
        second = int(created)
        cached = self._second  # one tuple read: safe when threads race on the cache
        if cached[0] != second:
            cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
            self._second = cached
        # Rounded to the microsecond first: 1.004 is 1.00399999... as a float.
        millis = min(999, round((created - second) * 1_000_000) // 1000)
        return f"{cached[1]}.{millis:03d}Z"

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        """Fill `log_data` in the documented order: standard, request, extra, error fields."""
        context = record_context(record)
        redactor = self.redactor
        log_data["timestamp"] = self._timestamp(record.created)
        log_data["level"] = record.levelname
        message = redactor.text(record.message)
        if len(message) > MAX_MESSAGE_CHARS:  # a megabyte path in "Not Found: ..."
            cut = len(message) - MAX_MESSAGE_CHARS
            message = f"{message[:MAX_MESSAGE_CHARS]}... [{cut} characters cut]"
        log_data["message"] = message
        log_data["logger"] = record.name
        if context.correlation_id is not None:
            log_data["correlation_id"] = context.correlation_id
        log_data["service"] = self.service
        log_data["environment"] = self.environment
        if context.trace_id is not None:
            log_data["trace_id"] = context.trace_id
            log_data["span_id"] = context.span_id
        if context.request is not None:
            for name in REQUEST_FIELDS:
                value = context.request.get(name)
                if value is not None:
                    log_data[name] = value
        stack_trace = message_dict.pop("exc_info", None)
        stack_info = message_dict.pop("stack_info", None)
        is_sensitive = redactor.is_sensitive
        extras = [*message_dict.items(), *record.__dict__.items()]  # `logger.info({...})`
        for key, value in extras:
            if key in _SKIPPED or str(key)[:1] == "_":
                continue
            if is_sensitive(str(key)):
                value = REDACTED
            elif type(value) not in _PLAIN:
                value = redactor.value(value, 1)
            log_data[key] = value
        if record.exc_info and record.exc_info[1] is not None:
            exception = record.exc_info[1]
            log_data["exception_type"] = type(exception).__name__
            log_data["exception_message"] = redactor.text(_tasks.scrub(record, str(exception)))
            # The traceback ends with the exception's message: redacted like it.
            log_data["stack_trace"] = (
                redactor.text(_tasks.scrub(record, stack_trace))
                if isinstance(stack_trace, str)
                else stack_trace
            )
            code = error_code(exception)
            if code is not None:
                log_data["error_code"] = code
        elif stack_trace is not None:
            log_data["stack_trace"] = stack_trace
        if stack_info is not None:
            log_data["stack_info"] = stack_info


class RedactingFilter(logging.Filter):
    """Redacts a record's sensitive `extra` fields and mapping arguments in place.

    crm-otel puts it on the app's own handlers (a JSON file of its `LOGGING`, say), which
    would otherwise print the values crm-otel's formatter redacts. Always lets the record
    through; a record is redacted once, whichever handler sees it first.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.__dict__.get(_REDACTED_ATTR):
            return True
        _, redactor = _state.current()
        fields = record.__dict__
        for key, value in list(fields.items()):
            if key in _SKIPPED or key[:1] == "_":
                continue
            if redactor.is_sensitive(key):
                fields[key] = REDACTED
            elif type(value) not in _PLAIN:
                fields[key] = redactor.value(value, 1)
        if isinstance(record.msg, Mapping):
            record.msg = redactor.value(record.msg)
        if isinstance(record.args, Mapping):  # `logger.info("%(password)s", {...})`
            record.args = redactor.value(record.args)
        fields[_REDACTED_ATTR] = True
        return True

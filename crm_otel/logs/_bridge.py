"""The OpenTelemetry logs bridge: Python log records into the OTel logs SDK, with trace context.

Emits through the logs API (`Logger.emit`), not the SDK's deprecated `LoggingHandler`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from crm_otel._sdk import Logger, LoggerProvider, SeverityNumber, get_logger_provider
from crm_otel._version import __version__
from crm_otel.logs import _state, _tasks
from crm_otel.logs._formatter import (
    _SKIPPED,
    SPAN_CONTEXT_ATTR,
    error_code,
    record_context,
)
from semconv import attributes as semconv

_NEVER_BRIDGED = ("opentelemetry", "crm_otel")
_MAX_LOGGERS = 1024
_OTHER_LOGGER = "crm_otel.bridge.other"

# Request context field -> log record attribute.
_REQUEST_ATTRIBUTES = {
    "user_id": semconv.USER_ID,
    "org_id": semconv.ORG_ID,
    "method": "http.request.method",
    "path": "http.route",
    "remote_addr": "client.address",
    "user_agent": "user_agent.original",
}


def severity(levelno: int) -> SeverityNumber:
    """The OTel severity of a Python log level (DEBUG 5, INFO 9, WARNING 13, ERROR 17, ...)."""
    if levelno <= logging.NOTSET:
        return SeverityNumber.UNSPECIFIED
    if levelno < logging.DEBUG:
        return SeverityNumber.TRACE
    base = min(levelno, logging.CRITICAL + 3)
    tier, offset = divmod(base - logging.DEBUG, 10)
    return SeverityNumber(5 + tier * 4 + min(offset, 3))


def _attribute_value(value: Any) -> Any:
    if isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)) and all(
        isinstance(v, (str, bool, int, float)) for v in value
    ):
        return list(value)
    return json.dumps(value, default=str, ensure_ascii=False)


class OtelLogHandler(logging.Handler):
    """Hands each record to the OTel logs SDK with the trace context it was logged in.

    Never bridged, so there is no feedback loop: records of the `opentelemetry.*` and
    `crm_otel.*` loggers, records logged while an exporter runs (instrumentation is
    suppressed there), and records logged while this handler is already emitting.
    """

    def __init__(self, provider: LoggerProvider | None = None, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self._provider = provider
        self._loggers: dict[str, Logger] = {}
        # Guards the logger cache's growth; emitting itself takes no lock of ours.
        self._lock = threading.Lock()
        self._local = threading.local()

    def _logger(self, name: str) -> Logger:
        logger = self._loggers.get(name)
        if logger is not None:
            return logger
        provider = self._provider or get_logger_provider()
        with self._lock:
            if len(self._loggers) >= _MAX_LOGGERS:
                name = _OTHER_LOGGER
                logger = self._loggers.get(name)
            if logger is None:
                logger = provider.get_logger(name, __version__)
                self._loggers[name] = logger
        return logger

    def emit(self, record: logging.LogRecord) -> None:
        name = record.name
        if (
            name.split(".", 1)[0] in _NEVER_BRIDGED
            or getattr(self._local, "emitting", False)
            or not is_instrumentation_enabled()
        ):
            return
        self._local.emitting = True
        try:
            self._emit(record)
        except Exception:
            self.handleError(record)
        finally:
            self._local.emitting = False

    def _emit(self, record: logging.LogRecord) -> None:
        _, redactor = _state.current()
        context = record_context(record)
        attributes: dict[str, Any] = {
            "code.file.path": record.pathname,
            "code.function.name": record.funcName,
            "code.line.number": record.lineno,
        }
        if context.correlation_id is not None:
            attributes[semconv.CORRELATION_ID] = context.correlation_id
        if context.request is not None:
            for field, key in _REQUEST_ATTRIBUTES.items():
                value = context.request.get(field)
                if value is not None:
                    attributes[key] = value
        extra = {
            key: value
            for key, value in record.__dict__.items()
            if key not in _SKIPPED and key[:1] != "_"
        }
        for key, value in redactor.fields(extra).items():
            attributes[_REQUEST_ATTRIBUTES.get(key, key)] = _attribute_value(value)
        exception = record.exc_info[1] if record.exc_info else None
        if exception is not None:
            # Set here rather than by the SDK (`exception=`), so that they are redacted.
            attributes["exception.type"] = type(exception).__name__
            attributes["exception.message"] = redactor.text(_tasks.scrub(record, str(exception)))
            attributes["exception.stacktrace"] = redactor.text(
                _tasks.scrub(record, "".join(traceback.format_exception(exception)))
            )
            code = error_code(exception)
            if code is not None:
                attributes[semconv.ERROR_CODE] = code
        span_context = record.__dict__.get(SPAN_CONTEXT_ATTR)
        otel_context = (
            trace.set_span_in_context(trace.NonRecordingSpan(span_context))
            if span_context is not None
            else None
        )
        self._logger(record.name).emit(
            timestamp=int(record.created * 1e9),
            observed_timestamp=time.time_ns(),
            context=otel_context,
            severity_number=severity(record.levelno),
            severity_text=record.levelname,
            body=redactor.text(record.getMessage()),
            attributes=attributes,
        )

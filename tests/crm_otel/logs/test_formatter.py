"""The JSON formatter: the fields of docs/design.md, request and error context, redaction."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from crm_otel._context import correlation_id_var, request_context_var
from crm_otel.logs import REDACTED, JsonFormatter

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0x00F067AA0BA902B7


def _record(
    message: str = "hello",
    *args: Any,
    level: int = logging.INFO,
    extra: dict[str, Any] | None = None,
    exc_info: Any = None,
) -> logging.LogRecord:
    logger = logging.getLogger("crm.test")
    return logger.makeRecord("crm.test", level, __file__, 1, message, args, exc_info, extra=extra)


def _format(record: logging.LogRecord, **kwargs: Any) -> dict[str, Any]:
    formatter = JsonFormatter(service="crm-backend", environment="staging", **kwargs)
    line = formatter.format(record)
    assert "\n" not in line
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def test_standard_fields_in_the_designed_order() -> None:
    """A plain record has timestamp, level, message, logger, service and environment, in order."""
    record = _record("lead %s created", 42)
    record.created = 1705314600.123456  # 2024-01-15T10:30:00.123Z
    data = _format(record)
    assert list(data) == ["timestamp", "level", "message", "logger", "service", "environment"]
    assert data == {
        "timestamp": "2024-01-15T10:30:00.123Z",
        "level": "INFO",
        "message": "lead 42 created",
        "logger": "crm.test",
        "service": "crm-backend",
        "environment": "staging",
    }


def test_timestamp_is_utc_with_milliseconds_across_seconds() -> None:
    """The cached second prefix is refreshed when the second changes."""
    formatter = JsonFormatter()
    first, second = _record(), _record()
    first.created, second.created = 1705314600.999, 1705314601.004
    assert json.loads(formatter.format(first))["timestamp"] == "2024-01-15T10:30:00.999Z"
    assert json.loads(formatter.format(second))["timestamp"] == "2024-01-15T10:30:01.004Z"


def test_trace_and_span_ids_of_the_current_span() -> None:
    """Inside a span the line carries its trace and span ids as lower-case hex."""
    context = SpanContext(TRACE_ID, SPAN_ID, is_remote=False, trace_flags=TraceFlags(1))
    with trace.use_span(NonRecordingSpan(context)):
        data = _format(_record())
    assert data["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert data["span_id"] == "00f067aa0ba902b7"


def test_no_trace_fields_outside_a_span() -> None:
    """Outside any span there is no trace id at all, never a zero one."""
    data = _format(_record())
    assert "trace_id" not in data and "span_id" not in data


def test_correlation_id_and_request_context() -> None:
    """The correlation id and the request's context come from crm-otel's context variables."""
    context = {
        "user_id": "7",
        "org_id": "org-1",
        "method": "POST",
        "path": "/api/v1/leads/",
        "remote_addr": "10.0.0.1",
        "user_agent": "curl/8",
    }
    token = correlation_id_var.set("abc-123")
    request_token = request_context_var.set(context)
    try:
        data = _format(_record())
    finally:
        request_context_var.reset(request_token)
        correlation_id_var.reset(token)
    assert data["correlation_id"] == "abc-123"
    for key, value in context.items():
        assert data[key] == value


def test_error_context_with_code() -> None:
    """An exception gives its type, message, stack trace and the code it carries."""

    class ValidationError(Exception):
        code = "VALIDATION_001"

    try:
        raise ValidationError("Email is required")
    except ValidationError:
        data = _format(_record(level=logging.ERROR, exc_info=sys.exc_info()))
    assert data["exception_type"] == "ValidationError"
    assert data["exception_message"] == "Email is required"
    assert data["error_code"] == "VALIDATION_001"
    assert "Traceback (most recent call last)" in data["stack_trace"]
    assert "exc_info" not in data


def test_error_code_attribute_and_no_code() -> None:
    """`error_code` is read too; an exception without a code gets no `error_code` field."""

    class ApiError(Exception):
        error_code = 503

    for exception, expected in ((ApiError("down"), "503"), (KeyError("x"), None)):
        try:
            raise exception
        except Exception:
            data = _format(_record(exc_info=sys.exc_info()))
        assert data.get("error_code") == expected


def test_extra_fields_are_kept_and_redacted() -> None:
    """`extra` values appear; sensitive keys, also nested in dicts and lists, are redacted."""
    extra = {
        "lead_id": 3,
        "password": "hunter2",
        "payload": {"email": "a@b.c", "API-Key": "k-1", "items": [{"session_id": "s"}]},
        "Authorization": "Bearer abc",
    }
    line = JsonFormatter().format(_record(extra=extra))
    data = json.loads(line)
    assert data["lead_id"] == 3
    assert data["password"] == REDACTED
    assert data["Authorization"] == REDACTED
    assert data["payload"] == {
        "email": "a@b.c",
        "API-Key": REDACTED,
        "items": [{"session_id": REDACTED}],
    }
    for secret in ("hunter2", "k-1", "Bearer abc"):
        assert secret not in line


def test_secrets_in_the_message_text_are_redacted() -> None:
    """`key=value` and `"key": "value"` pairs of sensitive keys are redacted in the message."""
    data = _format(_record("login password=hunter2 api_key: k1 %s ok=1", {"token": "t0k"}))
    assert "hunter2" not in data["message"] and "k1" not in data["message"]
    assert "t0k" not in data["message"]
    assert "ok=1" in data["message"]


def test_extra_redact_keys() -> None:
    """Keys given to the formatter are redacted besides the built-in list."""
    data = _format(_record(extra={"ssn": "123-45", "password": "p"}), redact_keys=("ssn",))
    assert data["ssn"] == REDACTED and data["password"] == REDACTED


def test_extra_cannot_forge_standard_fields() -> None:
    """`extra` cannot replace the level, the service or the trace id of a line."""
    data = _format(_record(extra={"level": "DEBUG", "service": "other", "trace_id": "0" * 32}))
    assert data["level"] == "INFO" and data["service"] == "crm-backend"
    assert "trace_id" not in data


def test_django_request_object_is_dropped_and_unknown_objects_serialise() -> None:
    """Django's `request` extra (whose repr carries the query string) is dropped; other
    objects become strings, so the line stays JSON."""

    class Opaque:
        def __str__(self) -> str:
            return "opaque"

    data = _format(_record(extra={"request": object(), "thing": Opaque(), "status_code": 404}))
    assert "request" not in data
    assert data["thing"] == "opaque" and data["status_code"] == 404


def test_hostile_text_stays_one_json_line() -> None:
    """Newlines, quotes and control characters in the message never break the line."""
    hostile = 'a"b\nc\r\n{"level": "CRITICAL"}\x00' + "x" * 10_000
    formatter = JsonFormatter()
    line = formatter.format(_record("%s", hostile))
    assert "\n" not in line
    assert json.loads(line)["message"] == hostile


def test_dict_message() -> None:
    """A dict logged as the message becomes fields (python-json-logger's convention), redacted."""
    data = _format(_record({"event": "x", "token": "t"}))  # type: ignore[arg-type]
    assert data["event"] == "x" and data["token"] == REDACTED


def test_lines_are_ascii_even_with_lone_surrogates() -> None:
    """Non-ASCII text and undecodable bytes (surrogate escapes) are escaped: the line is
    plain ASCII, so no stream encoding can make the handler drop it."""
    line = JsonFormatter().format(_record("%s", "café \udcff"))
    assert line.isascii()
    assert json.loads(line)["message"] == "café \udcff"


def test_secrets_in_an_exception_message_are_redacted_in_the_stack_trace_too() -> None:
    """The traceback repeats the exception's message: it is redacted like the message."""
    try:
        raise ValueError("bad login password=hunter2")
    except ValueError:
        line = JsonFormatter().format(_record(exc_info=sys.exc_info()))
    assert "hunter2" not in line
    assert json.loads(line)["exception_message"] == f"bad login password={REDACTED}"


def test_a_megabyte_message_is_cut_after_redaction() -> None:
    """A message longer than the cap (a framework logging a 1 MB path) is cut, saying how
    much was cut; a secret in it is redacted before the cut."""
    from crm_otel.logs._formatter import MAX_MESSAGE_CHARS

    line = _format(_record("Not Found: /x?password=hunter2&q=%s", "A" * 1_000_000))
    message = line["message"]
    assert len(message) < MAX_MESSAGE_CHARS + 50
    assert message.endswith(" characters cut]")
    assert "hunter2" not in message
    assert _format(_record("short"))["message"] == "short"

"""Celery's task log lines and task spans carry no argument or return value by default."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from celery.app import trace as celery_trace
from celery.worker import strategy
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from crm_otel.logs import (
    LogSettings,
    TaskValuesSpanProcessor,
    _state,
    _tasks,
    redacting_span_exporter,
    setup_logging,
)

TASK = "leads.tasks.send_signin_code"
CODE = "482913"
EMAIL = "ada@example.com"


@pytest.fixture(autouse=True)
def _installed() -> Iterator[None]:
    """crm-otel's logging installed (with its filters on Celery's loggers), registry empty."""
    setup_logging(Resource.create({"service.name": "worker"}), {}, {})
    yield
    _tasks._values.clear()


def _success(task_id: str, name: str = TASK) -> None:
    celery_trace.info(
        celery_trace.LOG_SUCCESS,
        {
            "id": task_id,
            "name": name,
            "return_value": repr(f"code {CODE} sent to {EMAIL}"),
            "runtime": 0.0123,
            "args": repr((EMAIL, CODE)),
            "kwargs": "{}",
        },
    )


def test_success_and_received_lines_lose_arguments_and_return_value(
    lines: list[dict[str, Any]],
) -> None:
    """The `received` and `succeeded` lines keep the task's name, id, state and runtime but
    not its arguments or return value, in the message or in `data`."""
    context = {"id": "t-1", "name": TASK, "args": repr((EMAIL, CODE)), "kwargs": "{}", "eta": None}
    logging.getLogger(strategy.__name__).info(
        celery_trace.LOG_RECEIVED, context, extra={"data": context}
    )
    _success("t-1")
    received, succeeded = lines
    assert received["data"] == {"id": "t-1", "name": TASK, "eta": None, "state": "RECEIVED"}
    assert succeeded["message"] == f"Task {TASK}[t-1] succeeded in 0.0123s: [REDACTED]"
    assert succeeded["data"] == {"id": "t-1", "name": TASK, "runtime": 0.0123, "state": "SUCCESS"}
    assert CODE not in str(lines) and EMAIL not in str(lines)


def test_failure_line_blanks_the_values_out_of_the_exception(
    lines: list[dict[str, Any]],
) -> None:
    """A failing task's exception message and stack trace, quoting its arguments, have them
    replaced by `[REDACTED]`; so does the `exc_text` other formatters print."""
    _tasks.remember("t-2", TASK, (EMAIL, CODE), {})
    records: list[logging.LogRecord] = []
    capture = logging.Handler()
    capture.emit = records.append  # type: ignore[method-assign]
    logging.getLogger().addHandler(capture)
    try:
        raise ValueError(f"mail server refused {EMAIL}: code {CODE} not delivered")
    except ValueError as exc:
        context = {"id": "t-2", "name": TASK, "exc": repr(exc), "traceback": "...", "args": "()"}
        context.update(kwargs="{}", description="raised unexpected")
        logging.getLogger(celery_trace.__name__).error(
            celery_trace.LOG_FAILURE, context, exc_info=True, extra={"data": context}
        )
    finally:
        logging.getLogger().removeHandler(capture)
    [line] = lines
    blanked = "mail server refused [REDACTED]: code [REDACTED] not delivered"
    assert line["exception_message"] == blanked
    assert line["data"]["state"] == "FAILURE" and "args" not in line["data"]
    assert CODE not in str(line) and EMAIL not in str(line)
    assert records[0].exc_text is not None and CODE not in records[0].exc_text


def test_an_opted_in_task_keeps_its_values(lines: list[dict[str, Any]]) -> None:
    """A task named in `CRM_OTEL_CELERY_LOG_ARGS_TASKS` is logged as Celery writes it."""
    settings = LogSettings.from_env({"CRM_OTEL_CELERY_LOG_ARGS_TASKS": f" other.task, {TASK} "})
    assert settings.celery_log_args_tasks == frozenset({TASK, "other.task"})
    _state.activate(settings)
    _success("t-3")
    [line] = lines
    assert CODE in line["message"] and "args" in line["data"]


def test_task_span_loses_the_values() -> None:
    """The task span's exception event, status description and retry reason are blanked out,
    and argument attributes are dropped; other spans are left alone."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(TaskValuesSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(redacting_span_exporter(exporter)))
    tracer = provider.get_tracer("test")
    _tasks.remember("t-4", TASK, (EMAIL,), {"code": CODE})
    with tracer.start_as_current_span(f"run/{TASK}") as span:
        span.set_attributes(
            {
                "celery.task_name": TASK,
                "messaging.message.id": "t-4",
                "celery.args": repr((EMAIL,)),
                "celery.retry.reason": f"Retry in 1s: code {CODE}",
            }
        )
        span.record_exception(ValueError(f"refused {EMAIL}"))
        span.set_status(Status(StatusCode.ERROR, f"refused {EMAIL}"))
    with tracer.start_as_current_span("other") as other:
        other.set_attribute("note", f"code {CODE}")
    task, untouched = exporter.get_finished_spans()
    assert "celery.args" not in (task.attributes or {})
    assert (task.attributes or {})["celery.retry.reason"] == "Retry in 1s: code [REDACTED]"
    assert task.status.description == "refused [REDACTED]"
    event = dict(task.events[0].attributes or {})
    assert event["exception.message"] == "refused [REDACTED]"
    assert EMAIL not in str(event["exception.stacktrace"])
    assert (untouched.attributes or {})["note"] == f"code {CODE}"
    # The ended span itself is left as it was recorded: only its export copy is blanked.
    assert span.status.description == f"refused {EMAIL}"  # type: ignore[attr-defined]
    assert "celery.args" in (span.attributes or {})  # type: ignore[attr-defined]


def test_only_plain_values_of_some_length_are_remembered_and_the_registry_is_capped() -> None:
    """Short values, booleans and objects are not blanked out (they would erase unrelated
    text or run app code); the registry forgets the oldest task past its cap."""
    _tasks.remember("t-5", TASK, (7, True, None, object(), "ok", [CODE]), {"to": EMAIL})
    assert set(_tasks.values_of("t-5")) == {CODE, EMAIL}
    for number in range(_tasks._MAX_TASKS + 1):
        _tasks.remember(f"n-{number}", TASK, (CODE,), {})
    assert _tasks.values_of("t-5") == () and len(_tasks._values) == _tasks._MAX_TASKS
    _tasks.forget("n-1")
    assert _tasks.values_of("n-1") == ()


def test_a_record_of_unexpected_shape_is_hidden_not_printed(lines: list[dict[str, Any]]) -> None:
    """A task record the filter cannot rewrite is replaced by a fixed message, not let through."""

    class Hostile(dict[str, Any]):
        def items(self) -> Any:
            raise RuntimeError("unexpected")

    context = Hostile(id="t-6", name=TASK, args=repr((CODE,)))
    logging.getLogger(celery_trace.__name__).info(
        "Task %(name)s[%(id)s] %(args)s", context, extra={"data": context}
    )
    [line] = lines
    assert line["message"] == "Celery task record hidden (unexpected shape)"
    assert CODE not in str(line)

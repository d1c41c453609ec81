"""The span processor of workflow execution events."""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode

from crm_otel.logs import _state
from crm_otel.logs._formatter import SPAN_CONTEXT_ATTR
from semconv import attributes, spans

WORKFLOW_LOGGER = "workflow"
"""The logger of workflow execution events (the CRM's `workflow` logger)."""

workflow_logger = logging.getLogger(WORKFLOW_LOGGER)


class WorkflowLogProcessor(SpanProcessor):
    """Logs the workflow execution line (docs/design.md, Logs) when a `workflow.execute` span ends.

    Logs in the thread that ends the span, so the line carries that request's or task's
    correlation id; the trace and span ids are the workflow span's. Stateless: no lock.
    """

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        if span.name != spans.WORKFLOW_EXECUTE:
            return
        attrs = span.attributes or {}
        completed = [e for e in span.events if e.name == spans.EVENT_ACTION_COMPLETE]
        failed = sum(
            1
            for e in completed
            if (e.attributes or {}).get(attributes.ACTION_STATUS)
            == attributes.ActionStatus.FAILURE.value
        )
        success = span.status.status_code is not StatusCode.ERROR and failed == 0
        executed = len(completed) if completed else attrs.get(attributes.WORKFLOW_ACTION_COUNT, 0)
        duration_ms = (
            round((span.end_time - span.start_time) / 1e6, 1)
            if span.end_time is not None and span.start_time is not None
            else None
        )
        extra: dict[str, Any] = {
            "event_type": "workflow.executed",
            "workflow_id": attrs.get(attributes.WORKFLOW_ID),
            "workflow_name": attrs.get(attributes.WORKFLOW_NAME),
            "duration_ms": duration_ms,
            "success": success,
            "actions_executed": executed,
            "actions_failed": failed,
            SPAN_CONTEXT_ATTR: span.context,
        }
        if not success:
            for event in span.events:
                if event.name == "exception":
                    event_attrs = event.attributes or {}
                    # Unqualified, as the formatter writes the type of a logged exception.
                    extra["exception_type"] = str(event_attrs.get("exception.type", "")).rsplit(
                        ".", 1
                    )[-1]
                    message = event_attrs.get("exception.message")
                    extra["exception_message"] = (
                        _state.current()[1].text(message) if isinstance(message, str) else message
                    )
                    break
        workflow_logger.log(
            logging.INFO if success else logging.ERROR,
            "workflow %s %s",
            extra["workflow_name"] or extra["workflow_id"],
            "executed" if success else "failed",
            extra=extra,
        )

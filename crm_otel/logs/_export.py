"""Redaction of spans on their way out: the exporter is handed redacted copies.

A span that has ended is never changed. Processors (metrics from spans, tail sampling)
see it as it was recorded; what leaves the process, through any exporter crm-otel's
pipeline builds, is a copy with sensitive values replaced. The work runs on the export
thread, not on the thread that ended the span, and a span with nothing to redact is
exported as it is, without a copy.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import Link, Status

from crm_otel._export_health import HEALTH, ExportHealth
from crm_otel._log import internal_logger
from crm_otel.logs import _tasks
from crm_otel.logs._redact import REDACTED, Redactor

# Attributes holding free text a secret can hide in: a URL or its query string
# (`http.target`, `url.full`, `url.query`: `?api_key=...`) and a recorded exception's
# message and stack trace (`exception.message`: "login failed password=..."). Their
# `key=value` / `key: value` pairs under sensitive keys are redacted.
_TEXT_KEY_SUFFIXES = ("url", "target", "query", "uri", "message", "stacktrace")
_DROP = object()


def _changes(
    attributes: Mapping[str, Any], redactor: Redactor, values: tuple[str, ...] | None
) -> dict[str, Any]:
    """What changes in `attributes`: key -> new value, or `_DROP`. `values` are a Celery
    task's argument values (None: not a task span, or one whose values may be shown)."""
    changes: dict[str, Any] = {}
    for key, value in attributes.items():
        if values is not None and key in _tasks.HIDDEN_SPAN_ATTRIBUTES:
            changes[key] = _DROP
        elif redactor.is_sensitive(key):
            changes[key] = REDACTED
        elif isinstance(value, str):
            new = value
            if values and key in _tasks.SPAN_TEXT_ATTRIBUTES:
                new = _tasks.blank(new, values)
            if ("=" in new or ":" in new) and key.endswith(_TEXT_KEY_SUFFIXES):
                new = redactor.text(new)
            if new != value:
                changes[key] = new
    return changes


def _bounded(attributes: Mapping[str, Any], changes: dict[str, Any], dropped: int) -> Any:
    """A new immutable attributes mapping with `changes` applied, in the original order."""
    applied = {
        key: changes.get(key, value)
        for key, value in attributes.items()
        if changes.get(key) is not _DROP
    }
    bounded = BoundedAttributes(maxlen=None, attributes=applied, immutable=True)
    bounded.dropped = dropped  # what the SDK's limits dropped, reported as before
    return bounded


def _bounded_list(items: Sequence[Any], dropped: int) -> BoundedList[Any]:
    copied: BoundedList[Any] = BoundedList(None)
    copied.extend(items)
    copied.dropped = dropped
    return copied


def redacted(span: ReadableSpan, redactor: Redactor) -> ReadableSpan:
    """`span` itself when it holds nothing to redact, else a redacted copy of it."""
    attributes = span.attributes or {}
    values = _tasks.span_values(span) if "celery.task_name" in attributes else None
    changes = _changes(attributes, redactor, values)
    copied = False
    events: list[Event] = []
    for event in span.events:
        event_attributes = event.attributes or {}
        event_changes = _changes(event_attributes, redactor, values)
        if event_changes:
            copied = True
            dropped = getattr(event, "dropped_attributes", 0)
            event = Event(
                event.name,
                _bounded(event_attributes, event_changes, dropped),
                event.timestamp,
            )
        events.append(event)
    links: list[Link] = []
    for link in span.links:
        link_attributes = link.attributes or {}
        link_changes = _changes(link_attributes, redactor, None)
        if link_changes:
            copied = True
            link = Link(
                link.context,
                _bounded(link_attributes, link_changes, link.dropped_attributes),
            )
        links.append(link)
    status = span.status
    if values and status.description:
        description = _tasks.blank(status.description, values)
        if description != status.description:
            copied = True
            status = Status(status.status_code, description)
    if not changes and not copied:
        return span
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=_bounded(attributes, changes, span.dropped_attributes),
        events=_bounded_list(events, span.dropped_events),
        links=_bounded_list(links, span.dropped_links),
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class RedactingSpanExporter(SpanExporter):
    """Hands `exporter` redacted copies of the spans: values under sensitive keys (span,
    event and link attributes), sensitive `key=value` pairs in URL and exception texts,
    and a Celery task's argument values (see `TaskValuesSpanProcessor`).

    Holds no lock: the SDK calls `export` from one thread at a time.
    """

    def __init__(
        self, exporter: SpanExporter, redactor: Redactor, health: ExportHealth = HEALTH
    ) -> None:
        self._exporter = exporter
        self._redactor = redactor
        self._health = health
        self.copied = 0
        """Spans exported as a redacted copy."""
        self.dropped = 0
        """Spans not exported because redacting them failed (never exported unredacted);
        also counted in `crm_otel_export_dropped_total{signal="traces"}`."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        out: list[ReadableSpan] = []
        for span in spans:
            try:
                copy = redacted(span, self._redactor)
            except Exception:
                self.dropped += 1
                self._health.discarded("traces", 1)
                internal_logger.log(
                    logging.WARNING if self.dropped == 1 else logging.DEBUG,
                    "a span could not be redacted and was not exported: %s",
                    span.name,
                    exc_info=True,
                )
                continue
            if copy is not span:
                self.copied += 1
            out.append(copy)
        return self._exporter.export(out)

    def shutdown(self) -> None:
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._exporter.force_flush(timeout_millis)

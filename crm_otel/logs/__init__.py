"""Logs: JSON lines with the fields of docs/design.md, bridged to the OpenTelemetry logs SDK.

Under `opentelemetry-instrument` everything is zero-code: `setup_logging` puts the JSON
handlers on the root logger (and, unless `CRM_OTEL_LOG_OWN_CONSOLE=false`, keeps them
there), the access-log middleware is inserted by crm-otel's Django glue,
`span_processors` adds workflow execution events, and `redacting_span_exporter` puts
redaction in front of every span exporter. Apps that configure logging themselves use
`django_logging()` or the handler and formatter classes in their `LOGGING`. See the
README's Logs section.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter

from crm_otel import _sdk
from crm_otel._export_health import reporting_log_exporter
from crm_otel.logs import _state
from crm_otel.logs._access import ACCESS_LOGGER, AccessLogMiddleware
from crm_otel.logs._bridge import OtelLogHandler
from crm_otel.logs._export import RedactingSpanExporter
from crm_otel.logs._formatter import JsonFormatter, RedactingFilter
from crm_otel.logs._handlers import RotatingFileHandler, StdoutHandler, django_logging
from crm_otel.logs._handlers import install as _install
from crm_otel.logs._processors import WORKFLOW_LOGGER, WorkflowLogProcessor
from crm_otel.logs._redact import REDACTED, Redactor
from crm_otel.logs._settings import LogSettings
from crm_otel.logs._tasks import TaskValuesFilter, TaskValuesSpanProcessor


def setup_logging(
    resource: Resource, exporters: dict[str, Any], settings: LogSettings | Mapping[str, str]
) -> None:
    """Install the JSON handlers and, when exporters are configured, the OTel logs bridge.

    `settings` are the logs settings, or the environment to read them from; the
    resource's service name wins over theirs. No logger's level or handlers change except
    crm-otel's own, unless the console piece (`CRM_OTEL_LOG_OWN_CONSOLE`, on by default)
    applies the console rule.
    """
    service = resource.attributes.get("service.name")
    if not isinstance(service, str) or service.startswith("unknown_service"):
        service = None
    if not isinstance(settings, LogSettings):
        settings = LogSettings.from_env(settings, service=service)
    elif service is not None:
        settings = dataclasses.replace(settings, service=service)
    _state.activate(settings)
    bridge: logging.Handler | None = None
    if exporters:
        reporting = {name: reporting_log_exporter(cls) for name, cls in exporters.items()}
        _sdk.init_logging(reporting, resource)
        bridge = OtelLogHandler()
    _install(settings, bridge, settings.json and settings.own_console)


def span_processors() -> list[SpanProcessor]:
    """Span processors of the logs subsystem: a task's values noted for its export copy,
    then workflow events. Neither changes the span."""
    return [TaskValuesSpanProcessor(), WorkflowLogProcessor()]


def redacting_span_exporter(exporter: SpanExporter) -> SpanExporter:
    """`exporter` handed redacted copies of the spans (the original spans are never changed)."""
    _, redactor = _state.current()
    return RedactingSpanExporter(exporter, redactor)


__all__ = [  # noqa: RUF022 (plain `sorted()` order, which the public-API test checks)
    "ACCESS_LOGGER",
    "AccessLogMiddleware",
    "JsonFormatter",
    "LogSettings",
    "OtelLogHandler",
    "REDACTED",
    "RedactingFilter",
    "RedactingSpanExporter",
    "Redactor",
    "RotatingFileHandler",
    "StdoutHandler",
    "TaskValuesFilter",
    "TaskValuesSpanProcessor",
    "WORKFLOW_LOGGER",
    "WorkflowLogProcessor",
    "django_logging",
    "redacting_span_exporter",
    "setup_logging",
    "span_processors",
]

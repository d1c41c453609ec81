"""Logs: JSON lines with the design's fields, bridged to the OpenTelemetry logs SDK.

Under `opentelemetry-instrument` everything is zero-code: `setup_logging` puts the JSON
handlers on the root logger and keeps them there, the access-log middleware is inserted
by crm-otel's Django glue, and `span_processors` adds attribute redaction and workflow
execution events. See the README's Logs section.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor

from crm_otel import _sdk
from crm_otel._export_health import reporting_log_exporter
from crm_otel.logs import _state
from crm_otel.logs._access import ACCESS_LOGGER, AccessLogMiddleware
from crm_otel.logs._bridge import OtelLogHandler
from crm_otel.logs._formatter import JsonFormatter, RedactingFilter
from crm_otel.logs._handlers import RotatingFileHandler, StdoutHandler, django_logging
from crm_otel.logs._handlers import install as _install
from crm_otel.logs._processors import (
    WORKFLOW_LOGGER,
    RedactingSpanProcessor,
    WorkflowLogProcessor,
)
from crm_otel.logs._redact import REDACTED, Redactor
from crm_otel.logs._settings import LogSettings
from crm_otel.logs._tasks import TaskValuesFilter, TaskValuesSpanProcessor


def setup_logging(
    resource: Resource, exporters: dict[str, Any], settings: LogSettings | Mapping[str, str]
) -> None:
    """Install the JSON handlers and, when exporters are configured, the OTel logs bridge.

    `settings` are the logs settings, or the environment to read them from; the
    resource's service name wins over theirs.
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
    _install(settings, bridge)


def span_processors() -> list[SpanProcessor]:
    """Span processors of the logs subsystem: task values blanked out, attribute redaction,
    then workflow events."""
    _, redactor = _state.current()
    return [TaskValuesSpanProcessor(), RedactingSpanProcessor(redactor), WorkflowLogProcessor()]


__all__ = [  # noqa: RUF022 (plain `sorted()` order, which the public-API test checks)
    "ACCESS_LOGGER",
    "AccessLogMiddleware",
    "JsonFormatter",
    "LogSettings",
    "OtelLogHandler",
    "REDACTED",
    "RedactingFilter",
    "RedactingSpanProcessor",
    "Redactor",
    "RotatingFileHandler",
    "StdoutHandler",
    "TaskValuesFilter",
    "TaskValuesSpanProcessor",
    "WORKFLOW_LOGGER",
    "WorkflowLogProcessor",
    "django_logging",
    "setup_logging",
    "span_processors",
]

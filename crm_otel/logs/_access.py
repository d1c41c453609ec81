"""The access log: one JSON line per Django request, 404s and 500s included."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from crm_otel._context import request_context_var
from crm_otel._django import settle_identity
from crm_otel._sdk import response_already_logged
from crm_otel.logs import _state
from crm_otel.logs._formatter import error_code

ACCESS_LOGGER = "crm.access"
"""The logger of access lines (under the CRM's `crm` logger)."""

access_logger = logging.getLogger(ACCESS_LOGGER)

_MAX_PATH = 512
_EXCEPTION_ATTR = "_crm_otel_exception"


class AccessLogMiddleware:
    """Logs method, route, status, latency and who asked, once per request.

    crm-otel inserts it after OpenTelemetry's and its request-context middleware, so the
    server span is current (the line's trace id is the request's) and the correlation id
    and request context are set. Django logs a 404, or a 4xx/5xx response a view returns
    rather than raises, after every middleware has finished, with no span; this middleware
    logs that line itself, through Django's own `log_response`, while the span is still
    current (Django then skips its own). Latency is until the response object is returned.
    """

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        started = time.perf_counter()
        response = self.get_response(request)
        latency_ms = round((time.perf_counter() - started) * 1000, 1)
        settle_identity(request)  # users authenticated inside the view (DRF) on this line too
        status = int(getattr(response, "status_code", 0))
        if status >= 400 and not response_already_logged(response):
            from django.utils.log import log_response

            log_response(
                "%s: %s",
                getattr(response, "reason_phrase", ""),
                request.path,
                response=response,
                request=request,
            )
        context = request_context_var.get() or {}
        extra: dict[str, Any] = {
            "method": request.method,
            "path": context.get("path") or request.path[:_MAX_PATH],
            "status_code": status,
            "latency_ms": latency_ms,
        }
        exception = request.__dict__.get(_EXCEPTION_ATTR)
        if exception is not None:
            extra["exception_type"] = type(exception).__name__
            extra["exception_message"] = _state.current()[1].text(str(exception))
            code = error_code(exception)
            if code is not None:
                extra["error_code"] = code
        level = (
            logging.ERROR if status >= 500 else logging.WARNING if status >= 400 else logging.INFO
        )
        access_logger.log(level, "%s %s %s", extra["method"], extra["path"], status, extra=extra)
        return response

    def process_exception(self, request: Any, exception: BaseException) -> None:
        """Remember the exception for the access line; Django still builds the response."""
        request.__dict__[_EXCEPTION_ATTR] = exception
        return None

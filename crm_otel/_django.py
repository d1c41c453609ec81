"""Django glue: safe instrumentation, and the middleware that carries the CRM's request context."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from opentelemetry import trace

from crm_otel import _sdk, _settings, _usage
from crm_otel._context import (
    CORRELATION_HEADER,
    correlation_id_var,
    request_context_var,
    safe_correlation_id,
)
from crm_otel._drf import watch_authentication
from crm_otel._identity import IdentityFinder, report_failure
from crm_otel._log import internal_logger
from semconv import attributes

CRM_MIDDLEWARE: list[str] = [
    "crm_otel.metrics.MetricsMiddleware",
    "crm_otel._django.RequestContextMiddleware",
    "crm_otel.logs.AccessLogMiddleware",
]
"""crm-otel's middleware, inserted in this order right after OpenTelemetry's own (so the
server span is current while they run)."""

_OTEL_MIDDLEWARE = _sdk.DJANGO_MIDDLEWARE


def instrument_django(instrument: Callable[[], None]) -> None:
    """Run `instrument` (DjangoInstrumentor's) only once Django's real settings can load.

    Without `DJANGO_SETTINGS_MODULE` the instrumentor would call `settings.configure()`
    with empty settings, silently replacing the app's. Instead crm-otel says so loudly
    and instruments when the app calls `django.setup()` (manage.py, wsgi.py and Celery's
    Django fixup all do, after setting the variable).
    """
    if os.environ.get("DJANGO_SETTINGS_MODULE"):
        _instrument_with_settings(instrument)
        return
    internal_logger.warning(
        "DJANGO_SETTINGS_MODULE is not set at launch: Django is not instrumented yet and its "
        "settings are left alone; crm-otel will instrument it when django.setup() runs with "
        "the variable set (export DJANGO_SETTINGS_MODULE=crm.settings before "
        "opentelemetry-instrument to be sure)"
    )
    import django

    original_setup = django.setup

    @functools.wraps(original_setup)
    def setup(*args: Any, **kwargs: Any) -> None:
        django.setup = original_setup
        if os.environ.get("DJANGO_SETTINGS_MODULE"):
            _instrument_with_settings(instrument)
        else:
            internal_logger.warning(
                "DJANGO_SETTINGS_MODULE is still not set at django.setup(): Django is not "
                "instrumented"
            )
        original_setup(*args, **kwargs)

    django.setup = setup


def _instrument_with_settings(instrument: Callable[[], None]) -> None:
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        middleware = list(settings.MIDDLEWARE)
    except (ImproperlyConfigured, ImportError) as exc:
        internal_logger.warning(
            "DJANGO_SETTINGS_MODULE=%r cannot be loaded (%s): Django is not instrumented",
            os.environ.get("DJANGO_SETTINGS_MODULE"),
            exc,
        )
        return
    settings.MIDDLEWARE = middleware
    instrument()
    middleware = list(settings.MIDDLEWARE)
    if _OTEL_MIDDLEWARE in middleware:
        position = middleware.index(_OTEL_MIDDLEWARE) + 1
    else:
        position = 0
        _report_missing_otel_middleware()
    missing = [path for path in CRM_MIDDLEWARE if path not in middleware]
    middleware[position:position] = missing
    settings.MIDDLEWARE = middleware


_missing_reported = False


def _report_missing_otel_middleware() -> None:
    """Say once that the instrumentation's middleware is not where crm-otel expects it."""
    global _missing_reported
    # The instrumentation's own off switch leaves it out on purpose.
    if _missing_reported or os.environ.get("OTEL_PYTHON_DJANGO_INSTRUMENT") == "False":
        return
    _missing_reported = True
    internal_logger.warning(
        "%s is not in MIDDLEWARE after the Django instrumentation ran: crm-otel's middleware "
        "goes first, before any server span, so server spans lack the correlation id, user "
        "and org (install the opentelemetry-instrumentation-django version crm-otel pins)",
        _OTEL_MIDDLEWARE,
    )


class RequestContextMiddleware:
    """Sets the correlation id, user id and org id on the server span and in the context.

    The correlation id comes from a safe `X-Correlation-ID` header, else a new UUID4, and
    is echoed in the response. Who asked is read before the view (for the view's log
    lines) and again once the response is back (users that DRF authenticates inside the
    view, token or JWT); see `settle_identity`.
    """

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        identity_finder()  # a bad CRM_OTEL_ORG_ATTRIBUTE is reported at startup
        watch_authentication(_note_drf_user)

    def __call__(self, request: Any) -> Any:
        correlation_id = safe_correlation_id(request.headers.get(CORRELATION_HEADER))
        meta = request.META
        context: dict[str, Any] = {
            "user_id": None,
            "org_id": None,
            "method": request.method,
            "path": None,
            "remote_addr": meta.get("REMOTE_ADDR"),
            "user_agent": meta.get("HTTP_USER_AGENT", "")[:512],
        }
        trace.get_current_span().set_attribute(attributes.CORRELATION_ID, correlation_id)
        correlation_token = correlation_id_var.set(correlation_id)
        context_token = request_context_var.set(context)
        try:
            response = self.get_response(request)
        finally:
            settle_identity(request)
            _usage.set_org(context["org_id"])
            request_context_var.reset(context_token)
            correlation_id_var.reset(correlation_token)
        response[CORRELATION_HEADER] = correlation_id
        return response

    def process_view(self, request: Any, *_: Any) -> None:
        """Record the route template and who is asking, once auth middleware has run."""
        context = request_context_var.get()
        if context is None:
            return
        context["path"] = route_template(getattr(request, "resolver_match", None))
        try:
            identity = identity_finder().before_view(request)
        except Exception as exc:  # the app's own attribute failed: never break the request
            report_failure(exc)
            return
        context["user_id"], context["org_id"] = identity.user_id, identity.org_id
        _usage.set_org(identity.org_id)


def settle_identity(request: Any) -> None:
    """Record who asked as the view left the request: in the request context and on the
    server span.

    The first call of a request does the work: the access log calls it before writing its
    line, `RequestContextMiddleware` after (for requests the access log did not see). A
    user the view left known (DRF's, or one the app evaluated) replaces the one read before
    the view, an anonymous one included (a rejected token leaves no user id).
    """
    context = request_context_var.get()
    if context is None or request.__dict__.get(_SETTLED):
        return
    request.__dict__[_SETTLED] = True
    _update(context, request)
    span = trace.get_current_span()
    if context["user_id"] is not None:
        span.set_attribute(attributes.USER_ID, context["user_id"])
    if context["org_id"] is not None:
        span.set_attribute(attributes.ORG_ID, context["org_id"])


_SETTLED = "_crm_otel_identity_settled"


def _note_drf_user(request: Any) -> None:
    """DRF has just set the user: the view's next log lines carry it."""
    context = request_context_var.get()
    if context is not None:
        _update(context, request)


def _update(context: dict[str, Any], request: Any) -> None:
    try:
        known, identity = identity_finder().after_view(request)
    except Exception as exc:  # the app's own attribute failed: never break the request
        report_failure(exc)
        return
    if known:
        context["user_id"] = identity.user_id
        context["org_id"] = identity.org_id
    elif identity.org_id is not None:
        context["org_id"] = identity.org_id


@functools.cache
def identity_finder() -> IdentityFinder:
    """The finder built from this process's settings (`CRM_OTEL_ORG_ATTRIBUTE`)."""
    return IdentityFinder(_settings.ACTIVE.current().org_paths)


def route_template(match: Any) -> str | None:
    """The route template of a resolved request with a leading slash
    (`/api/v1/leads/<int:pk>/`), or None when no route matched."""
    route = getattr(match, "route", None)
    if route is None:
        return None
    return "/" + str(route).lstrip("^").rstrip("$").lstrip("/")

"""Django REST framework: who asked, from the moment DRF authenticates the request.

DRF authenticates inside the view (token, JWT), after every middleware ran, and its
`Request.user` setter puts the user on Django's request too. crm-otel wraps that setter,
so the log lines the view writes after authentication carry the user and org as well.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from crm_otel._identity import report_failure
from crm_otel._sdk import django_request

_WRAPPED = "_crm_otel_wrapped"


def watch_authentication(on_user: Callable[[Any], None]) -> bool:
    """Call `on_user(django_request)` each time DRF sets a request's user (authenticated
    or anonymous). Wraps DRF's setter once per process; without DRF, does nothing.
    Returns whether DRF is watched."""
    try:
        from rest_framework.request import Request
    except Exception:  # not installed, or an install that cannot import: leave it alone
        return False
    user = Request.__dict__.get("user")
    if not isinstance(user, property) or user.fset is None:
        return False
    if getattr(user.fset, _WRAPPED, False):
        return True
    original = user.fset

    @functools.wraps(original)
    def set_user(request: Any, value: Any) -> None:
        original(request, value)
        try:
            on_user(django_request(request))
        except Exception as exc:  # telemetry never breaks authentication
            report_failure(exc)

    setattr(set_user, _WRAPPED, True)
    Request.user = property(user.fget, set_user, user.fdel, user.__doc__)
    return True

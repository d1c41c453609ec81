"""Who asked: the user id and org id of a Django request, found without extra auth work.

Django's `AuthenticationMiddleware` puts a lazy `request.user` on the request before the
view; DRF (token, JWT) authenticates inside the view and sets the user it found on
Django's request too (`request._request.user = user`). So who asked is read twice: before
the view, for the log lines the view writes, and once the response is back, for the
server span and the access line. The second reading never evaluates a lazy object the app
left unevaluated (that would be a session lookup the app did not do).
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from typing import Any

from crm_otel._log import internal_logger

ORG_REQUEST_ATTRIBUTE = "crm_org_id"
"""A request attribute that, when the app sets it, is the org id (it beats every path)."""

MAX_ID_LENGTH = 128
"""Ids longer than this are cut: they come from the app, and attribute values are bounded."""

_REQUEST, _USER = "request", "user"


@dataclass(frozen=True)
class AttributePath:
    """A dotted attribute path followed from the request (`request.org.id`) or from its
    authenticated user (`profile.org_id`)."""

    on_request: bool
    names: tuple[str, ...]

    def __str__(self) -> str:
        return ".".join((_REQUEST if self.on_request else _USER, *self.names))


def parse_org_paths(text: str) -> tuple[AttributePath, ...]:
    """Parse comma-separated dotted paths, tried in order: those starting with `request.`
    are read from the request, the others (optionally `user.`) from `request.user`.

    Raises ValueError naming the first path that is not dotted Python identifiers.
    """
    paths = []
    for item in text.split(","):
        names = tuple(item.strip().split("."))
        if not all(name.isidentifier() for name in names):
            raise ValueError(item.strip())
        on_request = names[0] == _REQUEST
        if names[0] in (_REQUEST, _USER):
            names = names[1:]
        if not names:
            raise ValueError(item.strip())
        paths.append(AttributePath(on_request, names))
    return tuple(paths)


@dataclass(frozen=True)
class Identity:
    """The user id and org id of a request (None when not known)."""

    user_id: str | None
    org_id: str | None


class IdentityFinder:
    """Finds who asked, following the org paths configured (`CRM_OTEL_ORG_ATTRIBUTE`)."""

    def __init__(self, org_paths: tuple[AttributePath, ...]) -> None:
        self.org_paths = org_paths

    def before_view(self, request: Any) -> Identity:
        """Who asked, once the app's middleware ran: `request.user` is read (and a lazy
        one evaluated, as the app's views are about to)."""
        user = getattr(request, "user", None)
        return self._identity(request, user if _is_authenticated(user) else None)

    def after_view(self, request: Any) -> tuple[bool, Identity]:
        """Who asked, as the view left the request: whether the user is known (set by the
        view, by DRF or by the app's middleware, or lazy and already evaluated), and the
        identity. Nothing unevaluated is evaluated."""
        user = _evaluated(request.__dict__.get("user"))
        known = user is not _UNKNOWN
        return known, self._identity(request, user if _is_authenticated(user) else None)

    def _identity(self, request: Any, user: Any) -> Identity:
        user_id = _as_id(getattr(user, "pk", None)) if user is not None else None
        org_id = _as_id(getattr(request, ORG_REQUEST_ATTRIBUTE, None))
        for path in self.org_paths:
            if org_id is not None:
                break
            start = request if path.on_request else user
            if start is not None:
                org_id = _as_id(_follow_safely(start, path))
        return Identity(user_id, org_id)


_UNKNOWN: Any = object()


def follow(obj: Any, names: tuple[str, ...]) -> Any:
    """The value at the end of `names` from `obj`, or None where an attribute is missing
    or None; a lazy object on the way that nobody evaluated stops the walk (None)."""
    for name in names:
        obj = _evaluated(getattr(obj, name, None))
        if obj is None or obj is _UNKNOWN:
            return None
    return obj


def _follow_safely(start: Any, path: AttributePath) -> Any:
    try:
        return follow(start, path.names)
    except Exception as exc:  # the app's own property failed: never break the request
        report_failure(exc)
        return None


_failures_reported: set[str] = set()


def report_failure(exc: Exception) -> None:
    """Warn once per exception type that reading who asked failed (never its message,
    which may hold the app's data)."""
    name = type(exc).__name__
    if name not in _failures_reported:
        _failures_reported.add(name)
        internal_logger.warning(
            "reading the user or org of a request raised %s; the request goes on without "
            "it (check CRM_OTEL_ORG_ATTRIBUTE)",
            name,
        )


def _evaluated(value: Any) -> Any:
    """`value`, what a Django lazy object already holds, or `_UNKNOWN` for a lazy object
    nobody evaluated."""
    lazy_object, empty = _lazy_types()
    if lazy_object is not None and isinstance(value, lazy_object):
        wrapped = value.__dict__.get("_wrapped", empty)
        return _UNKNOWN if wrapped is empty else wrapped
    return value


@functools.cache
def _lazy_types() -> tuple[Any, Any]:
    try:
        from django.utils.functional import LazyObject, empty
    except ImportError:
        return None, None
    return LazyObject, empty


def _is_authenticated(user: Any) -> bool:
    return user is not _UNKNOWN and bool(getattr(user, "is_authenticated", False))


def _as_id(value: Any) -> str | None:
    """An id as text: strings, integers and UUIDs as they are, a model instance by its
    primary key; anything else (None, a bool, an object without a key) is not an id."""
    if getattr(type(value), "_meta", None) is not None:  # a Django model instance
        value = getattr(value, "pk", None)
    if isinstance(value, bool) or not isinstance(value, (str, int, uuid.UUID)):
        return None
    text = str(value)[:MAX_ID_LENGTH]
    return text or None

"""What a cache operation is: a Redis command on one of the app's configured caches.

A command counts on `cache_operations_total` when it goes to a Redis server and database
named by a Redis backend in Django's `CACHES` (Django's cache framework, django-redis, or
app code with its own client on that database) and was not issued by Celery or kombu
(broker traffic and the result backend share the cache's Redis in many CRMs). crm-otel's
own reads are never instrumented at all.
"""

from __future__ import annotations

import sys
import threading
import weakref
from types import FrameType
from typing import Any

from crm_otel._redis import cache_locations as cache_locations  # where the metrics find it

_INFRASTRUCTURE = frozenset({"celery", "kombu", "billiard"})
"""Top-level packages whose Redis commands are messaging machinery, not cache traffic."""

_PASS_THROUGH = frozenset({"redis", "opentelemetry", "wrapt", "crm_otel"})
"""Frames between the command's issuer and the hook: the client and the instrumentation."""

_MAX_FRAMES = 48
_DEFAULT_PORT = 6379

Address = tuple[str, int, int]
"""(host or socket path, port, database) of a Redis connection."""

_addresses: frozenset[Address] | None = None
_pools: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()
# Guards `_pools` (a weak dictionary is not safe to grow from several threads).
_lock = threading.Lock()


def _address(host: Any, port: Any, db: Any, path: Any = None) -> Address:
    if path:
        return (str(path), 0, int(db or 0))
    name = str(host or "localhost").lower()
    if name in ("localhost", "::1"):
        name = "127.0.0.1"
    return (name, int(port or _DEFAULT_PORT), int(db or 0))


def address_of_url(url: str) -> Address | None:
    """The address a Redis URL points at, or None for something else."""
    from redis.connection import parse_url

    try:
        kwargs: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
    except (ValueError, TypeError):
        return None
    return _address(kwargs.get("host"), kwargs.get("port"), kwargs.get("db"), kwargs.get("path"))


def cache_addresses() -> frozenset[Address]:
    """Addresses of the app's Redis caches, read from Django's settings once configured."""
    global _addresses
    if _addresses is not None:
        return _addresses
    from django.conf import settings

    if not settings.configured:
        return frozenset()
    try:
        urls = cache_locations(dict(getattr(settings, "CACHES", {})))
    except Exception:  # an unusable settings module: nothing is a cache
        urls = []
    found = {address_of_url(url) for url in urls}
    _addresses = frozenset(a for a in found if a is not None)
    return _addresses


def on_cache(instance: Any) -> bool:
    """Whether the client or pipeline `instance` talks to one of the app's caches."""
    pool = getattr(instance, "connection_pool", None)
    if pool is None:
        return False
    known = _pools.get(pool)
    if known is None:
        kwargs = getattr(pool, "connection_kwargs", {}) or {}
        known = (
            _address(kwargs.get("host"), kwargs.get("port"), kwargs.get("db"), kwargs.get("path"))
            in cache_addresses()
        )
        if _addresses is not None:  # settings read: the answer holds for this pool
            with _lock:
                _pools[pool] = known
    return known


def issued_by_infrastructure() -> bool:
    """Whether the Redis command being hooked was issued by Celery or kombu code.

    Looks at the first frame above the Redis client and the instrumentation: Celery's
    result backend and kombu's transport call the client themselves, while a task's
    `cache.get(...)` reaches it through Django's cache (still under Celery's frames, further up).
    """
    frame: FrameType | None = sys._getframe(1)
    for _ in range(_MAX_FRAMES):
        if frame is None:
            return False
        top = str(frame.f_globals.get("__name__", "")).partition(".")[0]
        if top not in _PASS_THROUGH:
            return top in _INFRASTRUCTURE
        frame = frame.f_back
    return False


def reset() -> None:
    """Forget the addresses and pools seen (tests)."""
    global _addresses
    _addresses = None
    with _lock:
        _pools.clear()

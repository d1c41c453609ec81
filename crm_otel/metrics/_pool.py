"""Connections Django checks out of a psycopg 3 pool (Django 5.1+ `OPTIONS["pool"]`).

A pooled connection is not closed when Django is done with it: Django hands it back with
`pool.putconn()` and a later request checks it out again. So `db_connections_active_gauge`
counts a pooled connection from its checkout (`connection_created`) to its return
(`putconn`), or to its finalization if it is dropped while checked out.
"""

from __future__ import annotations

import functools
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

from crm_otel import _sdk

_HOOKED = "_crm_otel_putconn"
"""Attribute marking a pool class whose `putconn` reports returns here."""


def pool_of(raw: Any) -> Any:
    """The psycopg_pool pool a driver connection is checked out of, or None.

    psycopg_pool sets `_pool` on a connection while it is checked out (Django itself hands
    the connection back through it).
    """
    return _sdk.pool_of(raw)


class CheckedOut:
    """Pooled connections this process counts as active, each counted once per checkout."""

    def __init__(self) -> None:
        # Reentrant: a weak reference's callback may run on this thread while it holds it.
        self._lock = threading.RLock()
        # id(connection) -> (weak reference whose callback fires if the connection dies
        # while checked out, pid that counted it, counter). Dropping the entry drops the
        # reference, so the callback of a returned connection never fires.
        self._out: dict[int, tuple[Any, int, Any]] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._out)

    def checkout(self, raw: Any, counter: Any) -> None:
        """Count `raw` as active on `counter` (an up-down counter) until it is returned; a
        second call before its return changes nothing."""
        key = id(raw)
        ref: Callable[[], Any]
        try:
            ref = weakref.ref(raw, functools.partial(self._dropped, key))
        except TypeError:  # no weak references: the return still uncounts it
            ref = _Strong(raw)
        with self._lock:
            if key in self._out and self._out[key][0]() is raw:
                return
            self._out[key] = (ref, os.getpid(), counter)
        counter.add(1)

    def returned(self, raw: Any) -> None:
        """Uncount `raw` if this process counted it."""
        self._forget(id(raw), raw)

    def _dropped(self, key: int, _ref: object) -> None:
        self._forget(key, None)

    def _forget(self, key: int, raw: Any) -> None:
        with self._lock:
            entry = self._out.get(key)
            if entry is None or (raw is not None and entry[0]() is not raw):
                return
            del self._out[key]
        # A copy inherited by a forked child was counted by its parent.
        if entry[1] == os.getpid():
            entry[2].add(-1)


class _Strong:
    """Stands in for a weak reference to an object that refuses them."""

    def __init__(self, obj: Any) -> None:
        self._obj = obj

    def __call__(self) -> Any:
        return self._obj


CHECKED_OUT = CheckedOut()
"""The pooled connections Django holds in this process."""


def hook_returns(pool: Any) -> None:
    """Make `type(pool).putconn` report each returned connection (once per pool class)."""
    cls = type(pool)
    original = getattr(cls, "putconn", None)
    if original is None or getattr(original, _HOOKED, False):
        return

    @functools.wraps(original)
    def putconn(self: Any, conn: Any, *args: Any, **kwargs: Any) -> Any:
        # Uncounted before the pool has it: another thread may check it out right away.
        CHECKED_OUT.returned(conn)
        return original(self, conn, *args, **kwargs)

    setattr(putconn, _HOOKED, True)
    cls.putconn = putconn

"""Active connections under a psycopg 3 pool: counted from checkout to return, once each."""

from __future__ import annotations

import gc
from types import SimpleNamespace
from typing import Any

from crm_otel.metrics import _runtime
from crm_otel.metrics._django import _on_connection_created, is_pool_exhaustion
from crm_otel.metrics._pool import CHECKED_OUT


class _Raw:
    """A driver connection (psycopg's has weak references and `_pool` while checked out)."""

    _pool: Any = None


class _Pool:
    """The part of psycopg_pool's ConnectionPool that Django uses: getconn and putconn."""

    def __init__(self, size: int) -> None:
        self.idle = [_Raw() for _ in range(size)]

    def getconn(self) -> _Raw:
        conn = self.idle.pop()
        conn._pool = self
        return conn

    def putconn(self, conn: _Raw) -> None:
        conn._pool = None
        self.idle.append(conn)


def _django_connection(raw: Any) -> Any:
    return SimpleNamespace(connection=raw, execute_wrappers=[])


def _active(runtime: _runtime.Runtime) -> float:
    return float(runtime.recorder.collect().families["db_connections_active_gauge"][()])


def test_a_pooled_connection_counts_until_it_is_returned(runtime: _runtime.Runtime) -> None:
    """Checkouts raise the gauge, returns lower it; reusing a connection never leaks a count."""
    pool = _Pool(2)
    for _ in range(5):  # five requests, each on a connection the pool reuses
        first, second = pool.getconn(), pool.getconn()
        _on_connection_created(connection=_django_connection(first))
        _on_connection_created(connection=_django_connection(second))
        assert _active(runtime) == 2.0
        pool.putconn(first)
        assert _active(runtime) == 1.0
        pool.putconn(second)
        assert _active(runtime) == 0.0
    assert len(CHECKED_OUT) == 0


def test_a_checkout_signalled_twice_counts_once(runtime: _runtime.Runtime) -> None:
    """A second signal for a connection still out changes nothing."""
    pool = _Pool(1)
    conn = pool.getconn()
    _on_connection_created(connection=_django_connection(conn))
    _on_connection_created(connection=_django_connection(conn))
    assert _active(runtime) == 1.0
    pool.putconn(conn)
    pool.putconn(pool.getconn())  # a checkout Django never saw: not uncounted
    assert _active(runtime) == 0.0


def test_a_pooled_connection_dropped_while_out_is_uncounted(runtime: _runtime.Runtime) -> None:
    """A checked-out connection that is garbage collected (never returned) leaves the gauge."""
    pool = _Pool(1)
    conn = pool.getconn()
    _on_connection_created(connection=_django_connection(conn))
    assert _active(runtime) == 1.0
    del conn
    gc.collect()
    assert _active(runtime) == 0.0


def test_plain_connections_count_until_finalized(runtime: _runtime.Runtime) -> None:
    """Without a pool a connection counts until the driver's connection is finalized."""
    raw = _Raw()
    _on_connection_created(connection=_django_connection(raw))
    assert _active(runtime) == 1.0
    del raw
    gc.collect()
    assert _active(runtime) == 0.0


def test_psycopg_pool_errors_are_pool_exhaustion() -> None:
    """psycopg_pool's PoolTimeout and TooManyRequests, wrapped by Django, are exhaustion."""

    def psycopg_pool_error(name: str) -> type[Exception]:
        return type(name, (Exception,), {"__module__": "psycopg_pool"})

    class OperationalError(Exception):
        pass

    for name in ("PoolTimeout", "TooManyRequests"):
        wrapped = OperationalError("couldn't get a connection after 30.00 sec")
        wrapped.__cause__ = psycopg_pool_error(name)("couldn't get a connection")
        assert is_pool_exhaustion(wrapped)
    assert not is_pool_exhaustion(psycopg_pool_error("PoolClosed")("the pool is closed"))
    assert not is_pool_exhaustion(type("PoolTimeout", (Exception,), {})("not psycopg_pool's"))

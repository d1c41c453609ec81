"""Django: the middleware that serves the metrics path and records request metrics, and
the database hooks (query durations, errors, active connections, pool exhaustion)."""

from __future__ import annotations

import contextlib
import os
import time
import weakref
from collections.abc import Callable
from typing import Any

from crm_otel._django import route_template
from crm_otel.metrics import _pool, _runtime, _tenants
from crm_otel.metrics._cache_scope import cache_locations
from semconv.metrics import OTHER, UNMATCHED_PATH, DbErrorType, QueryType

METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
"""HTTP methods kept as the `method` label; any other becomes `other`."""

_COUNTED = "_crm_otel_counted"
"""Attribute set on an exception already counted in `db_errors_total`."""


class MetricsMiddleware:
    """Answers `GET <CRM_OTEL_METRICS_PATH>` and records `http_*` for every other request.

    `path` is the resolved route template with a leading slash (`/api/v1/leads/<int:pk>/`),
    or `unmatched` when no route matched, so ids never reach a label.
    """

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        runtime = _runtime.current()
        if runtime is not None:
            for url in _redis_cache_urls():
                runtime.poller.notice_url(url)

    def __call__(self, request: Any) -> Any:
        runtime = _runtime.current()
        if runtime is None:
            return self.get_response(request)
        if request.path_info == runtime.settings.path and request.method in ("GET", "HEAD"):
            return _scrape_response(runtime, request)
        token = _runtime.in_app_work.set(True)
        usage = _tenants.begin()
        started = time.perf_counter()
        answered = False
        try:
            response = self.get_response(request)
            answered = True
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            _runtime.in_app_work.reset(token)
            # A request that raised is not counted (nor in `http_requests_total`); its
            # queries and log lines are.
            counted = _tenants.REQUESTS if answered else None
            _tenants.finish(usage, counted, elapsed_ms / 1000.0)
        method = request.method if request.method in METHODS else OTHER
        status = response.status_code
        labels = {
            "method": method,
            "path": route_template(getattr(request, "resolver_match", None)) or UNMATCHED_PATH,
            "status": str(status) if 100 <= status <= 599 else OTHER,
        }
        instruments = runtime.instruments
        instruments.http_requests.add(1, labels)
        instruments.http_request_duration.record(elapsed_ms, labels)
        if status >= 500:
            instruments.http_errors.add(1, labels)
        return response


def _redis_cache_urls() -> list[str]:
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        caches = dict(getattr(settings, "CACHES", {}))
    except ImproperlyConfigured:  # used outside a configured Django project
        return []
    return cache_locations(caches)


def _scrape_response(runtime: _runtime.Runtime, request: Any) -> Any:
    from django.http import HttpResponse

    headers = request.headers
    status, content_type, body = runtime.scrape(headers.get("Authorization"), headers.get("Accept"))
    response = HttpResponse(
        body if request.method == "GET" else b"", content_type=content_type, status=status
    )
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    response["Cache-Control"] = "no-store"
    return response


def query_type(sql: object) -> str:
    """The `query_type` label of a statement: its first keyword, or `other`."""
    text = sql if isinstance(sql, str) else str(sql)
    keyword = text.lstrip(" \t\r\n(").split(None, 1)[0].lower() if text.strip() else ""
    try:
        return QueryType(keyword).value
    except ValueError:
        return QueryType.OTHER.value


def error_type(exc: BaseException) -> str:
    """The `error_type` label of a database exception (Django's wrapper or the driver's)."""
    chain = [exc, exc.__cause__, exc.__context__]
    names = {type(e).__name__ for e in chain if e is not None}
    if "QueryCanceled" in names or any(getattr(e, "pgcode", None) == "57014" for e in chain if e):
        return DbErrorType.TIMEOUT.value
    for name, kind in (
        ("IntegrityError", DbErrorType.INTEGRITY),
        ("OperationalError", DbErrorType.CONNECTION),
        ("InterfaceError", DbErrorType.CONNECTION),
        ("ProgrammingError", DbErrorType.PROGRAMMING),
        ("DataError", DbErrorType.DATA),
    ):
        if name in names:
            return kind.value
    return DbErrorType.OTHER.value


_EXHAUSTED_MESSAGES = (
    "too many connections",
    "remaining connection slots are reserved",
    "too many clients",
)


_POOL_ERRORS = ("PoolTimeout", "TooManyRequests")
"""psycopg_pool's errors for a pool with no connection to give: none came free in time,
or too many requests were already waiting."""


def is_pool_exhaustion(exc: BaseException) -> bool:
    """Whether a connection was refused for lack of a free slot: the server's (PostgreSQL
    53300, MySQL 1040) or a psycopg 3 pool's (`PoolTimeout`, `TooManyRequests`)."""
    for e in (exc, exc.__cause__, exc.__context__):
        if e is None:
            continue
        kind = type(e)
        if kind.__module__.split(".")[0] == "psycopg_pool" and kind.__name__ in _POOL_ERRORS:
            return True
        if getattr(e, "pgcode", None) == "53300":
            return True
        if any(m in str(e).lower() for m in _EXHAUSTED_MESSAGES):
            return True
    return False


def execute_wrapper(
    execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: Any
) -> Any:
    """Django execute wrapper timing every query and counting failed ones."""
    runtime = _runtime.current()
    if runtime is None:
        return execute(sql, params, many, context)
    started = time.perf_counter()
    kind = query_type(sql)
    try:
        return execute(sql, params, many, context)
    except Exception as exc:
        runtime.instruments.db_errors.add(1, {"error_type": error_type(exc)})
        _mark(exc)
        raise
    finally:
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        runtime.instruments.db_query_duration.record(elapsed_ms, {"query_type": kind})
        _tenants.note(_tenants.DB_S, elapsed_ms / 1000.0, _tenants.DB_QUERIES, 1.0)


def _mark(exc: BaseException) -> None:
    # Exceptions with __slots__ refuse it: they may be counted twice, never lost.
    with contextlib.suppress(AttributeError):
        setattr(exc, _COUNTED, True)


def count_unhandled(exc: BaseException | None) -> None:
    """Count a database failure that escaped a request or a task without passing a query
    (the connection itself failed), and pool exhaustion."""
    runtime = _runtime.current()
    if runtime is None or exc is None:
        return
    exhausted = is_pool_exhaustion(exc)
    if exhausted:
        runtime.instruments.db_pool_exhausted.add(1)
    if getattr(exc, _COUNTED, False):
        return
    if exhausted or _is_database_error(exc):
        runtime.instruments.db_errors.add(1, {"error_type": error_type(exc)})
        _mark(exc)


def _is_database_error(exc: BaseException) -> bool:
    try:
        from django.db import DatabaseError
    except ImportError:
        return False
    return isinstance(exc, DatabaseError)


def _on_connection_created(sender: Any = None, connection: Any = None, **_: Any) -> None:
    runtime = _runtime.current()
    if runtime is None or connection is None:
        return
    if execute_wrapper not in connection.execute_wrappers:
        connection.execute_wrappers.append(execute_wrapper)
    raw = getattr(connection, "connection", None)
    if raw is None:
        return
    counter = runtime.instruments.db_connections
    pool = _pool.pool_of(raw)
    if pool is not None:  # returned to the pool, not closed: counted until its return
        _pool.hook_returns(pool)
        _pool.CHECKED_OUT.checkout(raw, counter)
        return
    counter.add(1)
    pid = os.getpid()
    # Django drops its reference on close, so CPython finalizes the driver's connection
    # right then; a copy inherited by a forked child is not ours. A driver without weak
    # references (TypeError) gets its opens counted only.
    with contextlib.suppress(TypeError):
        weakref.finalize(raw, _closed, counter, pid)


def _closed(counter: Any, pid: int) -> None:
    if os.getpid() == pid:
        counter.add(-1)


def _on_request_exception(sender: Any = None, request: Any = None, **_: Any) -> None:
    import sys

    count_unhandled(sys.exc_info()[1])


def connect_signals() -> None:
    """Connect the database and request-exception handlers (no Django settings needed)."""
    try:
        from django.core.signals import got_request_exception
        from django.db.backends.signals import connection_created
    except ImportError:
        return
    connection_created.connect(
        _on_connection_created, weak=False, dispatch_uid="crm_otel.metrics.db"
    )
    got_request_exception.connect(
        _on_request_exception, weak=False, dispatch_uid="crm_otel.metrics.exc"
    )

"""Redis: cache operations from the Redis instrumentation's hooks, and a poller reading
`INFO stats` (evictions) and queue lengths (LLEN) at a bounded rate."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation

from crm_otel._log import internal_logger
from crm_otel.metrics import _cache_scope, _runtime
from sampling._fork import register_at_fork
from semconv.metrics import OTHER, CacheStatus

OPERATIONS = frozenset(
    {
        "get",
        "set",
        "setex",
        "setnx",
        "getset",
        "delete",
        "del",
        "unlink",
        "exists",
        "expire",
        "ttl",
        "incr",
        "incrby",
        "decr",
        "decrby",
        "mget",
        "mset",
        "hget",
        "hset",
        "hgetall",
        "hdel",
        "lpush",
        "rpush",
        "lpop",
        "rpop",
        "llen",
        "sadd",
        "srem",
        "smembers",
        "zadd",
        "zrange",
        "publish",
        "keys",
        "scan",
        "eval",
        "evalsha",
        "flushdb",
        "touch",
        "pipeline",
    }
)
"""Commands kept as the `operation` label; any other is `other`."""

LOOKUPS = frozenset({"get", "mget", "hget", "hgetall", "exists", "getset"})
"""Commands whose reply says hit or miss."""

MAX_QUEUES = 50
"""Queues whose length is read; more configured queues are ignored (and said once)."""

_command = threading.local()


def request_hook(span: Any, instance: Any, args: Any, kwargs: Any) -> None:
    """Remembers the command for `response_hook`, and which Redis server the app uses."""
    name = args[0] if args else ""
    if isinstance(name, bytes):
        name = name.decode(errors="replace")
    _command.name = str(name).lower()
    runtime = _runtime.current()
    if runtime is not None:
        runtime.poller.notice(instance)


def response_hook(span: Any, instance: Any, response: Any) -> None:
    """Counts a command on `cache_operations_total` when it is a cache operation: issued
    inside a request or a task, on one of the app's Redis caches, not by Celery or kombu."""
    runtime = _runtime.current()
    if runtime is None or not _runtime.in_app_work.get():
        return
    if not _cache_scope.on_cache(instance) or _cache_scope.issued_by_infrastructure():
        return
    if hasattr(instance, "command_stack"):
        operation = "pipeline"
    else:
        operation = getattr(_command, "name", "")
        operation = operation if operation in OPERATIONS else OTHER
    status = CacheStatus.OK.value
    if operation in LOOKUPS:
        status = (CacheStatus.HIT if _found(response) else CacheStatus.MISS).value
    runtime.instruments.cache_operations.add(1, {"operation": operation, "status": status})


def _found(response: Any) -> bool:
    if isinstance(response, list | tuple):
        return any(item is not None for item in response)
    if isinstance(response, int) and not isinstance(response, bool):
        return response > 0
    return response is not None and response != {}


class RedisPoller:
    """Reads evictions and queue lengths from Redis at most every `interval_s`, in its own
    thread, so a slow Redis never delays a request or a state write."""

    def __init__(self, interval_s: float) -> None:
        self._interval_s = interval_s
        self._lock = threading.Lock()  # guards the fields below; no I/O under it
        self._poll_lock = threading.Lock()  # one poll at a time: the clients hold one connection
        self._pid = 0
        self._cache_client: Any = None
        self._broker_client: Any = None
        self._queues: tuple[str, ...] = ()
        self._evicted: float | None = None
        self._lengths: dict[str, float] = {}
        self._failed = False
        self._wake = threading.Event()
        register_at_fork(after_in_child=self._forget_queues)

    def _forget_queues(self) -> None:
        # Queue lengths are read by the worker's main process only, not by each child.
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()
        self._broker_client = None
        self._queues = ()
        self._lengths = {}

    def notice(self, instance: Any) -> None:
        """Learn the app's Redis server from the first client seen (cheap after that)."""
        if self._cache_client is not None and self._pid == os.getpid():
            return
        pool = getattr(instance, "connection_pool", None)
        if pool is None:
            return
        client = _client_like(pool)
        with self._lock:
            if self._cache_client is None or self._pid != os.getpid():
                self._cache_client = client
        self._ensure_thread()

    def notice_url(self, url: str) -> None:
        """Learn the Redis server from a URL (Django's cache, the broker) when the Redis
        instrumentation's hooks are not installed; a client seen by the hooks wins."""
        if self._cache_client is not None or not url.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            return
        import redis

        client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        with self._lock:
            if self._cache_client is None:
                self._cache_client = client
        self._ensure_thread()

    def watch_queues(self, broker_url: str, queues: Iterable[str]) -> None:
        """Read the lengths of `queues` on a Redis broker (a no-op for other brokers)."""
        if not broker_url.startswith(("redis://", "rediss://", "unix://")):
            return
        names = tuple(dict.fromkeys(queues))
        if len(names) > MAX_QUEUES:
            internal_logger.warning(
                "metrics: %d queues configured; reading the first %d", len(names), MAX_QUEUES
            )
            names = names[:MAX_QUEUES]
        import redis

        client = redis.Redis.from_url(broker_url, socket_timeout=1.0, socket_connect_timeout=1.0)
        with self._lock:
            self._broker_client = client
            self._queues = names
        self._ensure_thread()

    def _ensure_thread(self) -> None:
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        threading.Thread(target=self._run, name="crm-otel-redis-poller", daemon=True).start()

    def _run(self) -> None:
        pid = os.getpid()
        while os.getpid() == pid:
            self.poll()
            self._wake.wait(self._interval_s)

    def poll(self) -> None:
        """Read evictions and queue lengths once (what the thread does every interval)."""
        with self._poll_lock:
            self._poll()

    def _poll(self) -> None:
        from opentelemetry.instrumentation.utils import suppress_instrumentation

        with self._lock:
            cache_client, broker_client, queues = (
                self._cache_client,
                self._broker_client,
                self._queues,
            )
        try:
            # crm-otel's own reads are neither traced nor counted as the app's operations.
            with suppress_instrumentation():
                evicted = None
                if cache_client is not None:
                    evicted = float(cache_client.info("stats").get("evicted_keys", 0))
                lengths = {q: float(broker_client.llen(q)) for q in queues} if broker_client else {}
        except Exception as exc:
            if not self._failed:
                self._failed = True
                internal_logger.warning(
                    "metrics: reading Redis stats failed (%s); retrying quietly", exc
                )
            return
        self._failed = False
        with self._lock:
            if evicted is not None:
                self._evicted = evicted
            self._lengths.update(lengths)

    def observe_evictions(self, options: CallbackOptions) -> Iterable[Observation]:
        """Observable callback of `cache_evictions_total`."""
        value = self._evicted
        return [] if value is None else [Observation(value)]

    def observe_queue_lengths(self, options: CallbackOptions) -> Iterable[Observation]:
        """Observable callback of `celery_queue_length_gauge`."""
        with self._lock:
            lengths = dict(self._lengths)
        return [Observation(length, {"queue": queue}) for queue, length in lengths.items()]


def _client_like(pool: Any) -> Any:
    import redis

    kwargs = dict(getattr(pool, "connection_kwargs", {}))
    # Short timeouts: a stuck Redis must not hold the poller forever.
    kwargs.update(socket_timeout=1.0, socket_connect_timeout=1.0)
    new_pool = redis.ConnectionPool(
        connection_class=pool.connection_class, max_connections=1, **kwargs
    )
    return redis.Redis(connection_pool=new_pool)

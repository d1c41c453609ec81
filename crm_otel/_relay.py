"""Keep signals between web processes and Celery workers over the CRM's own Redis.

Two keys, both with an expiry, on the Redis the CRM already runs (the Celery broker, else
its Redis cache): a stream of kept trace ids (one entry per worker round, capped) that
web processes read from where they left off, and a sorted set of trace ids web processes
dropped for good after holding them (trimmed by age and size). Each round is one
MULTI/EXEC transaction, so a signal and a release of the same trace are ordered: the
later one sees the earlier. crm-otel's own commands are never traced nor counted.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

from sampling import Exchange, Reply

PREFIX = "crm_otel:sampling:"
"""Prefix of the two keys: `keep`, a stream of kept trace ids (one entry, field `ids`, per
worker round), and `released`, a sorted set of trace ids web processes dropped for good,
scored by release time."""
RETENTION_S = 3600
"""Expiry of both keys, and age after which a released id is forgotten."""
MAX_STREAM = 10_000
"""Entries kept in the keep stream (approximately)."""
MAX_RELEASED = 100_000
"""Ids kept in the released set."""
READ_COUNT = 10_000
"""Stream entries read per poll."""


class RedisChannel:
    """The relay's channel (`sampling.TraceRelay`) over Redis; one instance per process."""

    def __init__(self, url: str | None, hold_ms: float, prefix: str = PREFIX) -> None:
        self._url = url
        self._keep_key = prefix + "keep"
        self._released_key = prefix + "released"
        self._client: Any = None
        self._lock = threading.Lock()
        # Read from a little before now: a signal may come before this process holds anything.
        self._last_id = f"{int(time.time() * 1000 - hold_ms) - 60_000}-0"

    def __call__(self, exchange: Exchange) -> Reply:
        from opentelemetry.instrumentation.utils import suppress_instrumentation

        with self._lock:
            client = self._connect()
            # Not traced, and never counted as the app's cache operations.
            with suppress_instrumentation():
                return self._round(client, exchange)

    def _connect(self) -> Any:
        if self._client is None:
            url = self._url or discover_url()
            if not url:
                raise LookupError("no Redis broker or cache found")
            import redis

            self._client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        return self._client

    def _round(self, client: Any, exchange: Exchange) -> Reply:
        now = time.time()
        keep_key, released_key = self._keep_key, self._released_key
        pipe = client.pipeline(transaction=True)
        signal = exchange.signal
        if signal:
            pipe.xadd(keep_key, {"ids": " ".join(signal)}, maxlen=MAX_STREAM, approximate=True)
            pipe.expire(keep_key, RETENTION_S)
            pipe.zmscore(released_key, signal)
        if exchange.released or exchange.unreleased:
            if exchange.released:
                pipe.zadd(released_key, dict.fromkeys(exchange.released, now))
            if exchange.unreleased:
                pipe.zrem(released_key, *exchange.unreleased)
            pipe.zremrangebyscore(released_key, "-inf", now - RETENTION_S)
            pipe.zremrangebyrank(released_key, 0, -MAX_RELEASED - 1)
            pipe.expire(released_key, RETENTION_S)
        if exchange.poll:
            pipe.xread({keep_key: self._last_id}, count=READ_COUNT)
        results = pipe.execute()
        reply = Reply()
        if signal:
            scores = results[2] or []
            reply.released = {t for t, score in zip(signal, scores, strict=False) if score}
        if exchange.poll:
            reply.kept = self._read(results[-1])
        return reply

    def _read(self, result: Any) -> set[str]:
        kept: set[str] = set()
        streams = result.items() if isinstance(result, Mapping) else (result or [])
        for item in streams:
            entries = item[1]
            if isinstance(entries, list) and entries and isinstance(entries[0], list):
                entries = entries[0]  # RESP3 wraps each stream's entries once more
            for entry_id, fields in entries or []:
                self._last_id = _text(entry_id)
                ids = fields.get(b"ids") or fields.get("ids") or b""
                kept.update(_text(ids).split())
        return kept


def discover_url() -> str | None:
    """The Redis the CRM runs: the Celery broker when it is Redis, else a Redis cache."""
    urls: list[str] = []
    if "celery" in sys.modules:  # never import Celery into an app that does not use it
        try:
            from celery import current_app

            urls.append(str(current_app.conf.broker_url or ""))
        except Exception:  # an unusable Celery config: try Django's settings
            pass
    try:
        from django.conf import settings

        if settings.configured:
            urls.append(str(getattr(settings, "CELERY_BROKER_URL", "") or ""))
            from crm_otel._redis import cache_locations

            urls.extend(cache_locations(dict(getattr(settings, "CACHES", {}))))
    except Exception:  # no Django, or settings that do not import
        pass
    return next((u for u in urls if u.startswith(("redis://", "rediss://", "unix://"))), None)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

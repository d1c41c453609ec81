"""The Redis hooks under the real Redis instrumentation, and the poller against a real Redis."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from crm_otel import metrics
from crm_otel.metrics import _runtime

REDIS_URL = "redis://127.0.0.1:6379/4"  # black-box tests own databases 5 and up
KEY = f"crm-otel-test:{os.getpid()}"
"""Keys of this process only: another run of these tests may share the database."""


@pytest.fixture
def redis_client() -> Iterator[Any]:
    """A client of a real Redis created after the instrumentation (with crm-otel's hooks)."""
    with socket.socket() as sock:
        sock.settimeout(1)
        if sock.connect_ex(("127.0.0.1", 6379)) != 0:
            pytest.skip("Redis is not running on 127.0.0.1:6379")
    import redis
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    hooks = metrics.redis_hooks()
    assert hooks is not None
    request_hook, response_hook = hooks
    instrumentor = RedisInstrumentor()
    instrumentor.instrument(request_hook=request_hook, response_hook=response_hook)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        client.close()
        instrumentor.uninstrument()


def test_hooks_count_hits_misses_and_pipelines(
    runtime: _runtime.Runtime, redis_client: Any
) -> None:
    """Inside app work, GET hit/miss, SET and a pipeline are counted; outside, nothing is."""
    client = redis_client
    client.delete(KEY + ":k")
    token = _runtime.in_app_work.set(True)
    try:
        client.get(KEY + ":k")
        client.set(KEY + ":k", "v")
        client.get(KEY + ":k")
        pipe = client.pipeline()
        pipe.get(KEY + ":k").delete(KEY + ":k").execute()
    finally:
        _runtime.in_app_work.reset(token)
    client.get(KEY + ":k")  # outside app work: like broker polling
    operations = runtime.recorder.collect().families["cache_operations_total"]
    assert operations == {
        (("operation", "get"), ("status", "miss")): 1.0,
        (("operation", "get"), ("status", "hit")): 1.0,
        (("operation", "set"), ("status", "ok")): 1.0,
        (("operation", "pipeline"), ("status", "ok")): 1.0,
    }


def test_poller_reads_evictions_and_queue_lengths(
    runtime: _runtime.Runtime, redis_client: Any
) -> None:
    """The poller learns the server from the hooks, reads `evicted_keys` and LLEN, and its
    own commands are not counted as the app's."""
    client = redis_client
    client.delete(KEY + ":queue")
    client.rpush(KEY + ":queue", "a", "b", "c")
    runtime.poller.watch_queues(REDIS_URL, [KEY + ":queue"])
    token = _runtime.in_app_work.set(True)
    try:
        runtime.poller.poll()
    finally:
        _runtime.in_app_work.reset(token)
    families = runtime.recorder.collect().families
    assert families["cache_evictions_total"][()] >= 0
    assert families["celery_queue_length_gauge"] == {(("queue", KEY + ":queue"),): 3.0}
    assert "cache_operations_total" not in families
    client.delete(KEY + ":queue")

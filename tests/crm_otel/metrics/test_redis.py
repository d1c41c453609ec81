"""The Redis hooks under the real Redis instrumentation, and the poller against a real Redis."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from crm_otel import metrics
from crm_otel.metrics import _cache_scope, _runtime

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


@pytest.fixture
def cache_at() -> Iterator[Any]:
    """Sets the Redis URLs of the app's configured caches (as Django's `CACHES` would)."""

    def configure(*urls: str) -> None:
        _cache_scope.reset()
        found = {_cache_scope.address_of_url(url) for url in urls}
        _cache_scope._addresses = frozenset(a for a in found if a is not None)

    configure(REDIS_URL)
    yield configure
    _cache_scope.reset()


def test_hooks_count_hits_misses_and_pipelines(
    runtime: _runtime.Runtime, redis_client: Any, cache_at: Any
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


def _operations(runtime: _runtime.Runtime) -> dict[Any, float]:
    return dict(runtime.recorder.collect().families.get("cache_operations_total", {}))


def test_only_the_configured_cache_database_counts(
    runtime: _runtime.Runtime, redis_client: Any, cache_at: Any
) -> None:
    """A command on a Redis database that no `CACHES` entry names is not a cache operation;
    `localhost` and a missing port name the same server as `127.0.0.1:6379`."""
    cache_at("redis://127.0.0.1:6379/2")
    token = _runtime.in_app_work.set(True)
    try:
        redis_client.get(KEY + ":other-db")
        assert _operations(runtime) == {}
        cache_at(REDIS_URL)  # the same command on the configured database counts
        redis_client.get(KEY + ":other-db")
    finally:
        _runtime.in_app_work.reset(token)
    assert _operations(runtime) == {(("operation", "get"), ("status", "miss")): 1.0}
    assert _cache_scope.address_of_url("redis://localhost/4") == _cache_scope.address_of_url(
        REDIS_URL
    )
    assert _cache_scope.cache_locations(
        {
            "default": {
                "BACKEND": "django_redis.cache.RedisCache",
                "LOCATION": "redis://a/1,redis://b/1",
            },
            "local": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        }
    ) == ["redis://a/1", "redis://b/1"]


@pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")
def test_celery_result_backend_and_broker_are_not_cache_operations(
    runtime: _runtime.Runtime, redis_client: Any, cache_at: Any
) -> None:
    """On the cache's own Redis database, inside a task, Celery's result backend (the GET
    before storing a result, the SET of the result) and kombu's publishing are not counted,
    while the task's own cache read is."""
    from celery import Celery

    app = Celery("cache-scope", broker=REDIS_URL, backend=REDIS_URL, set_as_current=False)
    task_id = f"{KEY}:task"
    token = _runtime.in_app_work.set(True)
    try:
        app.backend.store_result(task_id, 42, "SUCCESS")
        assert app.backend.get_task_meta(task_id)["result"] == 42
        with app.connection_for_write() as connection:
            app.send_task("cache_scope.other", connection=connection)
        redis_client.get(KEY + ":from-the-task")
    finally:
        _runtime.in_app_work.reset(token)
        app.backend.forget(task_id)
        redis_client.delete("celery")
    assert _operations(runtime) == {(("operation", "get"), ("status", "miss")): 1.0}

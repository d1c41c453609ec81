"""Keep signals over a real Redis: ordered against releases, untraced, and failing fast."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from crm_otel._relay import RedisChannel
from sampling import Exchange

REDIS_URL = f"redis://127.0.0.1:6379/{os.environ.get('CRM_OTEL_TEST_REDIS_DB', '4')}"


@pytest.fixture
def prefix() -> Iterator[str]:
    """Keys of this test only (other runs may share the database); deleted afterwards."""
    with socket.socket() as sock:
        sock.settimeout(1)
        if sock.connect_ex(("127.0.0.1", 6379)) != 0:
            pytest.skip("Redis is not running on 127.0.0.1:6379")
    import redis

    name = f"crm-otel-test:{uuid.uuid4().hex}:"
    yield name
    redis.Redis.from_url(REDIS_URL).delete(name + "keep", name + "released")


def _id() -> str:
    return uuid.uuid4().hex


def test_a_signal_before_the_release_keeps_the_web_part(prefix: str) -> None:
    """A worker's signal reaches a web process polling in the same round it would
    release the trace, and the worker is told nothing was released."""
    web, worker = RedisChannel(REDIS_URL, 5000, prefix), RedisChannel(REDIS_URL, 5000, prefix)
    trace = _id()
    assert web(Exchange(poll=True)).kept == set()
    assert worker(Exchange(signal=[trace])).released == set()
    assert trace in web(Exchange(released=[trace], poll=True)).kept
    assert web(Exchange(poll=True)).kept == set()  # read once, from where it left off


def test_a_release_before_the_signal_marks_the_task(prefix: str) -> None:
    """A web process that released a trace before the worker's signal misses the signal,
    and the worker learns the trace was released."""
    web, worker = RedisChannel(REDIS_URL, 5000, prefix), RedisChannel(REDIS_URL, 5000, prefix)
    released, kept = _id(), _id()
    assert web(Exchange(released=[released], poll=True)).kept == set()
    reply = worker(Exchange(signal=[released, kept]))
    assert reply.released == {released}
    # Kept after all: taken back out of the released set.
    web(Exchange(unreleased=[released]))
    assert worker(Exchange(signal=[released])).released == set()


def test_a_new_process_reads_signals_sent_just_before_it_started(prefix: str) -> None:
    """Signals from the last hold period are read by a web process that starts polling
    after they were sent."""
    trace = _id()
    RedisChannel(REDIS_URL, 5000, prefix)(Exchange(signal=[trace]))
    assert trace in RedisChannel(REDIS_URL, 5000, prefix)(Exchange(poll=True)).kept


def test_the_relays_commands_are_neither_traced_nor_hooked(prefix: str) -> None:
    """Inside a request's span, under the Redis instrumentation, a round records no span
    and calls no hook (so it is never counted as a cache operation), while the app's own
    command in the same span is traced and hooked."""
    import redis
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    hooked: list[Any] = []
    instrumentor = RedisInstrumentor()
    instrumentor.instrument(
        tracer_provider=provider, request_hook=lambda *args: hooked.append(args)
    )
    try:
        channel = RedisChannel(REDIS_URL, 5000, prefix)
        app = redis.Redis.from_url(REDIS_URL)
        with provider.get_tracer("test").start_as_current_span("GET /"):
            channel(Exchange(signal=[_id()], released=[_id()], poll=True))
            assert hooked == [] and exporter.get_finished_spans() == ()
            app.get(prefix + "app-key")
        app.close()
    finally:
        instrumentor.uninstrument()
    assert [s.name for s in exporter.get_finished_spans()] == ["GET", "GET /"]
    assert len(hooked) == 1


def test_redis_down_fails_fast() -> None:
    """An unreachable Redis raises within the client's timeouts, for the relay to count."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    channel = RedisChannel(f"redis://127.0.0.1:{port}/0", 5000)
    started = time.monotonic()
    with pytest.raises(Exception, match=r"(?i)connect"):
        channel(Exchange(signal=[_id()]))
    assert time.monotonic() - started < 3


def test_no_redis_anywhere_is_a_lookup_error() -> None:
    """Without a URL, a Redis broker or a Redis cache, the channel says there is nowhere to
    signal."""
    with pytest.raises(LookupError):
        RedisChannel(None, 5000)(Exchange(signal=[_id()]))

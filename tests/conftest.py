"""Fixtures shared by every test: global state restored, so tests run in any order."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry import propagate, trace
from opentelemetry._logs import _internal as otel_logs
from opentelemetry.metrics import _internal as otel_metrics
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

from crm_otel import _settings
from crm_otel.metrics import _settings as metrics_settings


def _once(done: bool) -> Once:
    """A fresh "set once" guard in the given state (a saved guard object is mutated in place
    by the next `set_*_provider`, so its state is saved, not the object)."""
    once = Once()
    once._done = done
    return once


def _save_otel_globals() -> Callable[[], None]:
    """Snapshot the OpenTelemetry API's globals; the returned function puts them back.

    Covers the tracer, meter and logger providers with their "set once" guards, the global
    propagator, and the meter proxy, which hands every meter and instrument created before
    a provider was set over to the first provider set (a test's, without this).
    """
    tracer = trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE._done
    meter = otel_metrics._METER_PROVIDER, otel_metrics._METER_PROVIDER_SET_ONCE._done
    logger = otel_logs._LOGGER_PROVIDER, otel_logs._LOGGER_PROVIDER_SET_ONCE._done
    textmap = propagate.get_global_textmap()
    proxy = otel_metrics._PROXY_METER_PROVIDER
    with proxy._lock:
        real_provider = proxy._real_meter_provider
        proxy_meters: list[tuple[Any, Any, list[tuple[Any, Any]]]] = [
            (m, m._real_meter, [(i, i._real_instrument) for i in m._instruments])
            for m in proxy._meters
        ]

    def restore() -> None:
        trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE = tracer[0], _once(tracer[1])
        otel_metrics._METER_PROVIDER = meter[0]
        otel_metrics._METER_PROVIDER_SET_ONCE = _once(meter[1])
        otel_logs._LOGGER_PROVIDER = logger[0]
        otel_logs._LOGGER_PROVIDER_SET_ONCE = _once(logger[1])
        propagate.set_global_textmap(textmap)
        with proxy._lock:
            proxy._real_meter_provider = real_provider
            proxy._meters[:] = [m for m, _, _ in proxy_meters]
            for proxy_meter, real_meter, instruments in proxy_meters:
                proxy_meter._real_meter = real_meter
                proxy_meter._instruments[:] = [i for i, _ in instruments]
                for instrument, real_instrument in instruments:
                    instrument._real_instrument = real_instrument

    return restore


@pytest.fixture(autouse=True)
def _restore_globals() -> Iterator[None]:
    """Put back the environment, the OpenTelemetry API's globals (providers, their "set
    once" guards, the propagator) and the root logger's handlers and level, and forget the
    settings a test activated."""
    environ = dict(os.environ)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    restore_otel = _save_otel_globals()
    yield
    os.environ.clear()
    os.environ.update(environ)
    root.handlers[:] = handlers
    root.setLevel(level)
    restore_otel()
    _settings.ACTIVE.reset()
    metrics_settings.ACTIVE.reset()


@pytest.fixture
def span_exporter() -> InMemorySpanExporter:
    """A fresh global TracerProvider exporting synchronously to memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    trace.set_tracer_provider(provider)
    return exporter

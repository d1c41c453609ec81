"""Fixtures shared by every test: global state restored, so tests run in any order."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

from crm_otel import _settings
from crm_otel.metrics import _settings as metrics_settings


@pytest.fixture(autouse=True)
def _restore_globals() -> Iterator[None]:
    """Put back the environment, the global tracer provider and the root logger's handlers,
    and forget the settings a test activated."""
    environ = dict(os.environ)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    provider, once = trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE
    yield
    os.environ.clear()
    os.environ.update(environ)
    root.handlers[:] = handlers
    root.setLevel(level)
    trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE = provider, once
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

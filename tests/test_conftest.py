"""The autouse fixture puts the OpenTelemetry API's globals back after each test.

The first test sets every global provider and the propagator as an app would; the second,
running after it, finds them as they were before (pytest keeps this file's order).
"""

from __future__ import annotations

from opentelemetry import _logs, metrics, propagate, trace
from opentelemetry._logs import _internal as otel_logs
from opentelemetry.metrics import _internal as otel_metrics
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_SET_BY_THE_FIRST_TEST: dict[str, object] = {}
_EARLY_METER = metrics.get_meter("tests.early")
"""A meter taken before any provider is set, as instrumentations take theirs at import."""
_EARLY_COUNTER = _EARLY_METER.create_counter("tests.early")


def _snapshot() -> dict[str, object]:
    return {
        "tracer": (trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE._done),
        "meter": (otel_metrics._METER_PROVIDER, otel_metrics._METER_PROVIDER_SET_ONCE._done),
        "logger": (otel_logs._LOGGER_PROVIDER, otel_logs._LOGGER_PROVIDER_SET_ONCE._done),
        "proxy": otel_metrics._PROXY_METER_PROVIDER._real_meter_provider,
        "early": _EARLY_COUNTER._real_instrument,  # type: ignore[attr-defined]
        "textmap": propagate.get_global_textmap(),
    }


def test_a_test_sets_every_global_provider() -> None:
    """Setting each provider and the propagator takes effect inside the test."""
    _SET_BY_THE_FIRST_TEST.update(_snapshot())
    tracer_provider, meter_provider = TracerProvider(), MeterProvider()
    logger_provider, textmap = LoggerProvider(), TraceContextTextMapPropagator()
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    _logs.set_logger_provider(logger_provider)
    propagate.set_global_textmap(textmap)
    assert trace.get_tracer_provider() is tracer_provider
    assert metrics.get_meter_provider() is meter_provider
    assert _logs.get_logger_provider() is logger_provider
    assert propagate.get_global_textmap() is textmap
    assert _EARLY_COUNTER._real_instrument is not None  # type: ignore[attr-defined]
    meter_provider.shutdown()
    logger_provider.shutdown()
    tracer_provider.shutdown()


def test_the_next_test_finds_the_globals_as_they_were() -> None:
    """Providers, guards, the meter proxy and the propagator are back, and can be set again."""
    assert _SET_BY_THE_FIRST_TEST, "run with the test above, in file order"
    assert _snapshot() == _SET_BY_THE_FIRST_TEST
    provider = TracerProvider()
    trace.set_tracer_provider(provider)  # the guard was reset, so this is not refused
    assert trace.get_tracer_provider() is provider
    provider.shutdown()
    assert isinstance(propagate.get_global_textmap(), TextMapPropagator)

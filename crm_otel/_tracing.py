"""The span helper for application code (docs/design.md, Traces)."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from crm_otel._version import __version__

_cache: tuple[trace.TracerProvider, trace.Tracer] | None = None


def _tracer() -> trace.Tracer:
    # One tracer per provider: cheap per span, and right again if the global provider is
    # replaced (tests do; a ProxyTracer would keep the first provider's tracer forever).
    global _cache
    provider = trace.get_tracer_provider()
    if _cache is None or _cache[0] is not provider:
        _cache = (provider, provider.get_tracer("crm_otel", __version__))
    return _cache[1]


class TracingInstrumentation:
    """Spans for application code: `create_span` on the current tracer provider."""

    @staticmethod
    def create_span(
        name: str, attributes: Mapping[str, AttributeValue] | None = None
    ) -> AbstractContextManager[trace.Span]:
        """Open a span named `name` as the current span and yield it.

        An exception leaving the block is recorded on the span, sets its status to
        ERROR, and is re-raised.
        """
        # The tracer's own context manager, not one wrapped in a second generator.
        return _tracer().start_as_current_span(
            name, attributes=attributes, record_exception=True, set_status_on_exception=True
        )

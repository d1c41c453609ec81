"""Redis glue: the instrumentation kept to commands issued inside a trace, and the app's
Redis caches as Django's `CACHES` names them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Tracer, TracerProvider
from opentelemetry.util.types import Attributes


class InTraceOnlyTracerProvider(TracerProvider):
    """Hands out tracers that start a span only when a span is already current.

    A Celery worker polls its Redis broker (BRPOP, LLEN, EVALSHA, ...) outside any task;
    traced as-is, every poll is a root trace. Given to the Redis instrumentation, this
    keeps the commands the app issues inside requests and tasks and drops the polling.
    """

    def __init__(self, delegate: TracerProvider) -> None:
        self._delegate = delegate

    def get_tracer(self, *args: Any, **kwargs: Any) -> Tracer:
        return _InTraceOnlyTracer(self._delegate.get_tracer(*args, **kwargs))


class _InTraceOnlyTracer(Tracer):
    def __init__(self, delegate: Tracer) -> None:
        self._delegate = delegate

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> Span:
        if not trace.get_current_span(context).get_span_context().is_valid:
            return trace.INVALID_SPAN
        return self._delegate.start_span(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
        )

    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> AbstractContextManager[Span]:
        # Handing back the delegate's own context manager keeps this wrapper off the path
        # of every command (no second generator, no second `use_span`).
        if not trace.get_current_span(context).get_span_context().is_valid:
            return nullcontext(trace.INVALID_SPAN)
        return self._delegate.start_as_current_span(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
            end_on_exit,
        )


def cache_locations(caches: dict[str, Any]) -> list[str]:
    """The Redis URLs of Django `CACHES` entries with a Redis backend."""
    urls: list[str] = []
    for cache in caches.values():
        location = cache.get("LOCATION")
        if "redis" not in str(cache.get("BACKEND", "")).lower() or not location:
            continue
        for item in [location] if isinstance(location, str) else list(location):
            urls.extend(part.strip() for part in re.split(r"[;,]", str(item)) if part.strip())
    return urls

"""The one place in sampling that touches private names of the OpenTelemetry SDK and API.

`has_error` runs on every unsampled span, and the SDK's public `events` and `attributes`
copy their containers (under a lock) on each read; so the SDK's own deque and dict are
read here when they have the shape this SDK gives them. The export thread suppresses
instrumentation the way the SDK's own processors do. `PRIVATE_NAMES` lists each name,
and `tests/sampling/test_sdk_seam.py` says which one moved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util import BoundedList

SUPPRESS_INSTRUMENTATION_KEY = _SUPPRESS_INSTRUMENTATION_KEY
"""The context key under which instrumentations stay quiet (the export's own HTTP calls)."""


def raw_events(span: ReadableSpan) -> Sequence[Any] | None:
    """The span's events without a copy, or None when the SDK keeps them otherwise."""
    events: Any = getattr(span, "_events", None)
    return getattr(events, "_dq", None) if type(events) is BoundedList else None


def raw_attributes(span: ReadableSpan) -> Mapping[str, Any] | None:
    """The span's attributes without a copy, or None when the SDK keeps them otherwise."""
    attributes: Any = getattr(span, "_attributes", None)
    return getattr(attributes, "_dict", None) if type(attributes) is BoundedAttributes else None


PRIVATE_NAMES: tuple[tuple[str, str, str], ...] = (
    ("opentelemetry-api", "opentelemetry.context", "_SUPPRESS_INSTRUMENTATION_KEY"),
    ("opentelemetry-sdk", "opentelemetry.sdk.trace:Span.__init__", "_events"),
    ("opentelemetry-sdk", "opentelemetry.sdk.trace:Span.__init__", "_attributes"),
    ("opentelemetry-sdk", "opentelemetry.sdk.util:BoundedList.__init__", "_dq"),
    ("opentelemetry-api", "opentelemetry.attributes:BoundedAttributes.__init__", "_dict"),
)
"""(distribution, where, name): a module and its attribute, or the `module:function`
whose code sets the attribute on instances."""

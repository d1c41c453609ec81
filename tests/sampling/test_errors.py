"""What counts as an error, on real SDK spans and on spans built by hand."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from sampling import has_error

SpanSetup = Callable[[Span], None]

CASES: list[tuple[str, SpanSetup, bool]] = [
    ("plain", lambda span: None, False),
    ("error status", lambda span: span.set_status(Status(StatusCode.ERROR)), True),
    ("ok status", lambda span: span.set_status(Status(StatusCode.OK)), False),
    ("recorded exception", lambda span: span.record_exception(ValueError("x")), True),
    ("other event", lambda span: span.add_event("action.start"), False),
    ("http 503", lambda span: span.set_attribute("http.status_code", 503), True),
    ("http 500 new key", lambda span: span.set_attribute("http.response.status_code", 500), True),
    ("http 5xx as text", lambda span: span.set_attribute("http.status_code", "502"), True),
    ("http 404", lambda span: span.set_attribute("http.response.status_code", 404), False),
    ("unrelated attribute", lambda span: span.set_attribute("db.system", "postgresql"), False),
]


def finished(setup: SpanSetup) -> ReadableSpan:
    """A span made by the real SDK, as a processor receives it."""
    captured: list[ReadableSpan] = []
    provider = TracerProvider(sampler=ALWAYS_ON, shutdown_on_exit=False)

    class Capture:
        def on_start(self, span: object, parent_context: object = None) -> None: ...
        def _on_ending(self, span: object) -> None: ...
        def on_end(self, span: ReadableSpan) -> None:
            captured.append(span)

        def shutdown(self) -> None: ...
        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return True

    provider.add_span_processor(Capture())  # type: ignore[arg-type]
    span = provider.get_tracer("test").start_span("s", kind=SpanKind.SERVER)
    setup(span)
    span.end()
    return captured[0]


@pytest.mark.parametrize(("label", "setup", "expected"), CASES, ids=[c[0] for c in CASES])
def test_sdk_spans(label: str, setup: SpanSetup, expected: bool) -> None:
    """On spans the SDK made (the fast path over its own containers) each signal is seen."""
    assert has_error(finished(setup)) is expected


@pytest.mark.parametrize(("label", "setup", "expected"), CASES, ids=[c[0] for c in CASES])
def test_hand_built_spans(label: str, setup: SpanSetup, expected: bool) -> None:
    """On spans built from plain tuples and dicts (the public path) the answers are the same."""
    sdk_span = finished(setup)
    copy = ReadableSpan(
        name=sdk_span.name,
        context=sdk_span.context,
        attributes=dict(sdk_span.attributes or {}),
        events=tuple(Event(e.name, e.attributes) for e in sdk_span.events),
        status=sdk_span.status,
        kind=sdk_span.kind,
    )
    assert has_error(copy) is expected

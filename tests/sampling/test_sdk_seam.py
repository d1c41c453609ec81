"""sampling's seam: the SDK's private names are still where `sampling._sdk` expects them."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider

from sampling._sdk import PRIVATE_NAMES, raw_attributes, raw_events
from tests._seam import missing


@pytest.mark.parametrize(("distribution", "where", "name"), PRIVATE_NAMES)
def test_private_name_is_where_the_seam_expects(distribution: str, where: str, name: str) -> None:
    """Each private name sampling uses exists in the installed SDK and API."""
    module, _, function = where.partition(":")
    if function:
        problem = missing("sampling/_sdk.py", distribution, module, function, name)
    else:
        problem = missing("sampling/_sdk.py", distribution, module, name, "")
    assert problem == ""


def test_real_spans_take_the_fast_path() -> None:
    """On this SDK's spans the seam reads the containers themselves, not copies."""
    span = TracerProvider().get_tracer("test").start_span("work")
    span.set_attribute("http.response.status_code", 503)
    span.add_event("exception")
    span.end()
    events, attributes = raw_events(span), raw_attributes(span)
    assert events is not None and [e.name for e in events] == ["exception"], (
        "sampling/_sdk.py: the SDK no longer keeps span events in BoundedList._dq"
    )
    assert attributes == {"http.response.status_code": 503}, (
        "sampling/_sdk.py: the SDK no longer keeps span attributes in BoundedAttributes._dict"
    )

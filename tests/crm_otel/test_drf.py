"""DRF's user setter is watched: crm-otel hears of each user DRF sets, without side effects."""

from __future__ import annotations

from typing import Any

import pytest

from crm_otel._drf import watch_authentication

rest_request = pytest.importorskip("rest_framework.request")


class DjangoRequest:
    """The Django request under a DRF request: it only receives attributes."""


@pytest.fixture
def drf_request(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A DRF `Request` over a bare Django request; DRF's `user` property restored after."""
    Request = rest_request.Request
    monkeypatch.setattr(Request, "user", Request.__dict__["user"])
    request = Request.__new__(Request)
    request._request = DjangoRequest()
    return request


def test_each_user_drf_sets_is_reported_once(drf_request: Any) -> None:
    """Watching twice wraps once: each user set is reported once, with Django's request,
    and DRF still sets it on both requests."""
    seen: list[Any] = []
    assert watch_authentication(lambda request: seen.append(request.user))
    assert watch_authentication(lambda request: seen.append(request.user))
    drf_request.user = "alice"
    assert seen == ["alice"]
    assert drf_request.user == "alice" and drf_request._request.user == "alice"


def test_a_failing_listener_never_breaks_authentication(drf_request: Any) -> None:
    """A listener that raises leaves DRF's authentication as it was."""

    def explode(request: Any) -> None:
        raise RuntimeError("boom")

    watch_authentication(explode)
    drf_request.user = "bob"
    assert drf_request.user == "bob" and drf_request._request.user == "bob"

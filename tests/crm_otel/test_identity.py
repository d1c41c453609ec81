"""Who asked: org paths (`CRM_OTEL_ORG_ATTRIBUTE`) and the user as the view left it."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from django.utils.functional import SimpleLazyObject

from crm_otel._identity import AttributePath, IdentityFinder, follow, parse_org_paths
from crm_otel._settings import Settings


class Request:
    """A request as middleware sees it: plain attributes set by Django, DRF and the app."""

    def __init__(self, **attributes: Any) -> None:
        self.__dict__.update(attributes)


class User:
    def __init__(self, pk: Any, authenticated: bool = True, **attributes: Any) -> None:
        self.pk = pk
        self.is_authenticated = authenticated
        self.__dict__.update(attributes)


class Org:
    """Stands for a Django model instance: the class has `_meta`, the instance a `pk`."""

    _meta = object()

    def __init__(self, pk: Any) -> None:
        self.pk = pk


ANONYMOUS = User(None, authenticated=False)


def finder(text: str = "org_id") -> IdentityFinder:
    return IdentityFinder(parse_org_paths(text))


def test_paths_starting_with_request_are_read_from_the_request() -> None:
    """`request.org.id` is read from the request; `profile.org_id` and `user.org_id` from
    the user; commas separate paths tried in order."""
    assert parse_org_paths("request.org.id, profile.org_id,user.org_id") == (
        AttributePath(True, ("org", "id")),
        AttributePath(False, ("profile", "org_id")),
        AttributePath(False, ("org_id",)),
    )
    assert str(parse_org_paths("org")[0]) == "user.org"


@pytest.mark.parametrize("text", ["", "request", "user", "org-id", "request..org", "a,", "1org"])
def test_malformed_paths_are_rejected(text: str) -> None:
    """A path that is not dotted identifiers, or names only `request`/`user`, is an error."""
    with pytest.raises(ValueError):
        parse_org_paths(text)


def test_bad_setting_warns_once_and_uses_the_default(caplog: pytest.LogCaptureFixture) -> None:
    """A malformed `CRM_OTEL_ORG_ATTRIBUTE` is one warning naming it; `org_id` is used."""
    with caplog.at_level(logging.WARNING, logger="crm_otel"):
        settings = Settings.from_env({"CRM_OTEL_ORG_ATTRIBUTE": "request.org-id"})
    assert settings.org_paths == (AttributePath(False, ("org_id",)),)
    lines = [r.getMessage() for r in caplog.records if "CRM_OTEL_ORG_ATTRIBUTE" in r.getMessage()]
    assert len(lines) == 1 and "'request.org-id'" in lines[0] and "dotted" in lines[0]


def test_org_from_the_request_a_model_instance_gives_its_key() -> None:
    """`request.org` holding a model instance gives its primary key; `request.org.id` the id."""
    request = Request(user=User(7), org=Org(uuid.UUID(int=5)))
    assert finder("request.org").before_view(request).org_id == str(uuid.UUID(int=5))
    request = Request(user=User(7), org=Request(id=12))
    assert finder("request.org.id").before_view(request).org_id == "12"


def test_org_from_the_user_and_first_path_with_a_value_wins() -> None:
    """The default path reads `user.org_id`; of several paths the first with a value wins."""
    user = User(7, org_id="org-7", profile=Request(org=Org(3)))
    assert finder().before_view(Request(user=user)).org_id == "org-7"
    assert finder("request.org,profile.org").before_view(Request(user=user)).org_id == "3"
    assert finder("request.org,org_id").before_view(Request(user=user, org=None)).org_id == "org-7"


def test_app_set_crm_org_id_wins_over_every_path() -> None:
    """A `crm_org_id` the app put on the request beats the configured paths."""
    request = Request(user=User(7, org_id="from-user"), crm_org_id="from-app", org=Org(1))
    assert finder("request.org,org_id").before_view(request).org_id == "from-app"


def test_values_that_are_not_ids_are_ignored() -> None:
    """Booleans, empty strings and objects without a key are not org ids; long ids are cut."""
    for value in (True, "", object(), 1.5, {"id": 1}):
        assert finder("request.org").before_view(Request(org=value)).org_id is None
    long = finder("request.org").before_view(Request(org="x" * 500)).org_id
    assert long == "x" * 128


def test_anonymous_users_have_no_id_and_no_user_org() -> None:
    """An anonymous user gives no user id, and no org from a user path."""
    identity = finder().before_view(Request(user=User(None, authenticated=False, org_id="o")))
    assert (identity.user_id, identity.org_id) == (None, None)


def test_after_view_reads_a_user_drf_set() -> None:
    """A user DRF set on the Django request during the view is known after it."""
    known, identity = finder().after_view(Request(user=User(42, org_id="acme")))
    assert known and (identity.user_id, identity.org_id) == ("42", "acme")


def test_after_view_a_rejected_token_is_known_and_anonymous() -> None:
    """DRF's AnonymousUser after a rejected token is known: no user id, no user org."""
    known, identity = finder().after_view(Request(user=ANONYMOUS))
    assert known and (identity.user_id, identity.org_id) == (None, None)


def test_after_view_never_evaluates_a_lazy_user() -> None:
    """A lazy `request.user` nobody evaluated stays unevaluated (no session lookup), and
    the user is reported unknown; one the app evaluated is read."""
    calls: list[int] = []

    def load() -> User:
        calls.append(1)
        return User(9, org_id="o-9")

    lazy = SimpleLazyObject(load)
    known, identity = finder().after_view(Request(user=lazy, crm_org_id="o-1"))
    assert not known and calls == []
    assert (identity.user_id, identity.org_id) == (None, "o-1")
    assert lazy.is_authenticated and calls == [1]
    known, identity = finder().after_view(Request(user=lazy))
    assert known and (identity.user_id, identity.org_id) == ("9", "o-9") and calls == [1]


def test_a_lazy_org_is_read_only_once_evaluated() -> None:
    """A lazy `request.org` the view never used is skipped; once used, its key is read."""
    calls: list[int] = []

    def load() -> Org:
        calls.append(1)
        return Org(5)

    request = Request(user=User(1), org=SimpleLazyObject(load))
    assert finder("request.org").after_view(request)[1].org_id is None and calls == []
    assert request.org.pk == 5
    assert finder("request.org").after_view(request)[1].org_id == "5" and calls == [1]


def test_follow_stops_at_missing_attributes() -> None:
    """A missing or None attribute on the way gives None, not an error."""
    assert follow(Request(a=Request(b=None)), ("a", "b", "c")) is None
    assert follow(Request(), ("a",)) is None
    assert follow(Request(a=Request(b=3)), ("a", "b")) == 3


def test_a_failing_org_attribute_never_breaks_the_request(
    span_exporter: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An org attribute that raises: the response still comes back, the user id is still on
    the server span, and one warning names the exception type (never its message)."""
    from opentelemetry import trace

    from crm_otel import _django

    class OrgLookupError(Exception):
        pass

    class Exploding(User):
        @property
        def org_id(self) -> str:
            raise OrgLookupError("secret detail")

    monkeypatch.setenv("CRM_OTEL_ORG_ATTRIBUTE", "org_id")
    _django.identity_finder.cache_clear()
    request = Request(headers={}, META={}, method="GET", user=Exploding(4), resolver_match=None)

    def view(req: Any) -> dict[str, str]:
        middleware.process_view(req, None, (), {})
        return {}

    middleware = _django.RequestContextMiddleware(view)
    tracer = trace.get_tracer("test")
    with caplog.at_level(logging.WARNING, logger="crm_otel"), tracer.start_as_current_span("s"):
        response = middleware(request)
    _django.identity_finder.cache_clear()
    assert "X-Correlation-ID" in response
    (span,) = span_exporter.get_finished_spans()
    assert span.attributes["crm.user.id"] == "4" and "crm.org.id" not in span.attributes
    warnings = [r.getMessage() for r in caplog.records if "OrgLookupError" in r.getMessage()]
    assert len(warnings) == 1 and "secret detail" not in warnings[0]

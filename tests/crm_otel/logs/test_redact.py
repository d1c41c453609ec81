"""Which keys are sensitive, and how values and free text are redacted."""

from __future__ import annotations

import pytest

from crm_otel.logs import REDACTED, LogSettings, Redactor


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "new_password1",
        "PASSWD",
        "client_secret",
        "access_token",
        "csrftoken",
        "Authorization",
        "http.request.header.authorization",
        "HTTP_COOKIE",
        "Set-Cookie",
        "api_key",
        "X-API-Key",
        "api key",
        "apikey",
        "sessionid",
        "csrfmiddlewaretoken",
        "private_key",
        "aws_credentials",
    ],
)
def test_sensitive_keys(key: str) -> None:
    """Sensitive keys are found whatever their case and separators."""
    assert Redactor().is_sensitive(key)


@pytest.mark.parametrize("key", ["email", "lead_id", "crm.correlation_id", "path", "keyboard"])
def test_ordinary_keys(key: str) -> None:
    """Ordinary keys are left alone."""
    assert not Redactor().is_sensitive(key)


def test_configured_keys_add_to_the_built_in_list() -> None:
    """`CRM_OTEL_REDACT_KEYS` adds fragments; the built-in ones stay."""
    settings = LogSettings.from_env({"CRM_OTEL_REDACT_KEYS": "ssn, Tax-ID ,"})
    redactor = Redactor(settings.redact_keys)
    assert redactor.is_sensitive("customer_ssn")
    assert redactor.is_sensitive("tax_id")
    assert redactor.is_sensitive("password")


def test_nested_values_bounded_depth() -> None:
    """Nested mappings are redacted; past the depth bound a whole value is redacted."""
    redactor = Redactor()
    deep: dict[str, object] = {"leaf": "x"}
    for _ in range(10):
        deep = {"next": deep}
    assert redactor.value({"a": [{"token": "t"}], "b": 1}) == {"a": [{"token": REDACTED}], "b": 1}
    assert REDACTED in repr(redactor.value(deep))


def test_text_patterns() -> None:
    """Free text keeps its shape; only the values of sensitive pairs change."""
    redactor = Redactor()
    assert redactor.text("password=hunter2&next=/") == f"password={REDACTED}&next=/"
    assert redactor.text('{"token": "abc", "n": 1}') == f'{{"token": "{REDACTED}", "n": 1}}'
    assert redactor.text("API-Key: k1") == f"API-Key: {REDACTED}"
    assert redactor.text("Authorization: Bearer abc.def") == f"Authorization: {REDACTED}"
    assert redactor.text("Session expired for user 5") == "Session expired for user 5"
    assert redactor.text("error: token=abc") == f"error: token={REDACTED}"
    assert redactor.text("a=b:c=d:secret=s") == f"a=b:c=d:secret={REDACTED}"


def test_quoted_values_and_headers_are_redacted_whole() -> None:
    """A quoted value is redacted up to its closing quote (spaces included), and a cookie
    or authorization header to the end of its line (every cookie, every word)."""
    redactor = Redactor()
    assert redactor.text('password="my secret pass" x=1') == f'password="{REDACTED}" x=1'
    assert (
        redactor.text('{"password": "hunter 2", "a": 1}') == f'{{"password": "{REDACTED}", "a": 1}}'
    )
    assert redactor.text("Cookie: theme=dark; auth=abc123\nnext") == f"Cookie: {REDACTED}\nnext"
    assert redactor.text("password='a b' c") == f"password='{REDACTED}' c"


def test_key_cache_is_bounded() -> None:
    """Past its cap the key cache stops growing, and keys past it are still checked."""
    redactor = Redactor()
    for index in range(5000):
        redactor.is_sensitive(f"field_{index}")
    assert len(redactor._cache) == 4096
    assert redactor.is_sensitive("password_99999") and not redactor.is_sensitive("field_4999")


def test_hostile_text_is_redacted_in_linear_time() -> None:
    """Long word runs, chains of pairs and runs of separators (a hostile message) keep the
    scan linear: 200 KB is handled well within a second (a backtracking pattern takes
    minutes, a recursive one overflows the stack)."""
    import time

    shapes = [
        '{"level": "x"} ' + "x" * 100_000 + " password=p " + "y-" * 50_000,
        "a=" * 100_000 + "password=p",
        "key: " * 40_000 + "password=p",
        "=:" * 100_000 + " password=p",
    ]
    for hostile in shapes:
        started = time.perf_counter()
        redacted = Redactor().text(hostile)
        assert time.perf_counter() - started < 1.0
        assert "password=" + REDACTED in redacted

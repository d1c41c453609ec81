"""Core settings and the lenient parsing of environment variables."""

from __future__ import annotations

import logging

import pytest

from crm_otel._env import VARIABLES, EnvReader
from crm_otel._settings import Settings


def test_defaults_are_production() -> None:
    """With nothing set: production, 10% baseline, 2 s slow threshold, errors kept."""
    settings = Settings.from_env({})
    assert settings.environment == "production"
    assert settings.sampling.ratio == 0.1
    assert settings.sampling.slow_threshold_ms == 2000
    assert settings.sampling.keep_errors is True
    assert settings.sampling.keep_all is False
    assert settings.sqlcommenter is False


def test_development_keeps_everything() -> None:
    """Development keeps every trace, whatever ratio is set."""
    for environ in ({}, {"CRM_OTEL_SAMPLING_RATIO": "0.1"}):
        settings = Settings.from_env({"CRM_OTEL_ENVIRONMENT": "Development", **environ})
        assert settings.environment == "development"
        assert settings.sampling.keep_all is True
        assert settings.sampling.ratio == 1.0


def test_explicit_values_are_used() -> None:
    """Every sampling variable reaches the policy."""
    settings = Settings.from_env(
        {
            "CRM_OTEL_SAMPLING_RATIO": "0.25",
            "CRM_OTEL_SLOW_THRESHOLD_MS": "150",
            "CRM_OTEL_KEEP_ERRORS": "no",
            "CRM_OTEL_SAMPLING_MAX_BUFFERED_SPANS": "500",
            "CRM_OTEL_SAMPLING_MAX_SPANS_PER_TRACE": "40",
            "CRM_OTEL_SAMPLING_MAX_TRACE_AGE_MS": "1500",
            "CRM_OTEL_SQLCOMMENTER": "TRUE",
        }
    )
    policy = settings.sampling
    assert (policy.ratio, policy.slow_threshold_ms, policy.keep_errors) == (0.25, 150, False)
    assert (policy.max_buffered_spans, policy.max_spans_per_trace) == (500, 40)
    assert policy.max_trace_age_ms == 1500
    assert settings.sqlcommenter is True


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("CRM_OTEL_SAMPLING_RATIO", "1.5", "a number from 0 to 1"),
        ("CRM_OTEL_SAMPLING_RATIO", "ten", "a number from 0 to 1"),
        ("CRM_OTEL_SAMPLING_RATIO", "nan", "a number from 0 to 1"),
        ("CRM_OTEL_SLOW_THRESHOLD_MS", "-5", "a number of at least 0"),
        ("CRM_OTEL_KEEP_ERRORS", "perhaps", "true or false"),
        ("CRM_OTEL_ENVIRONMENT", "prod", "one of production, staging, development"),
        ("CRM_OTEL_SAMPLING_MAX_BUFFERED_SPANS", "0", "a whole number of at least 1"),
        ("CRM_OTEL_SAMPLING_MAX_SPANS_PER_TRACE", "2.5", "a whole number of at least 1"),
    ],
)
def test_bad_value_falls_back_with_one_clear_line(name: str, value: str, expected: str) -> None:
    """A bad value is described once (variable, expected form, value given) and the
    default is used."""
    reader = EnvReader({name: value}, quiet=True)
    settings = Settings.from_env(reader.environ, reader=reader)
    assert reader.problems == [
        f"{name}: expected {expected}, got {value!r}; using the default {VARIABLES[name].default!r}"
    ]
    assert settings == Settings.from_env({})


def test_bad_value_is_logged_once_per_process(caplog: pytest.LogCaptureFixture) -> None:
    """Reading the same bad value many times logs it once."""
    logger = logging.getLogger("crm_otel")
    logger.addHandler(caplog.handler)
    try:
        for _ in range(3):
            Settings.from_env({"CRM_OTEL_SAMPLING_RATIO": "once-only-value"})
    finally:
        logger.removeHandler(caplog.handler)
    lines = [r.getMessage() for r in caplog.records if "once-only-value" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].startswith("CRM_OTEL_SAMPLING_RATIO: expected")


def test_blank_value_means_default() -> None:
    """An empty or blank variable is the same as an unset one, and is not a problem."""
    reader = EnvReader({"CRM_OTEL_SAMPLING_RATIO": "  "}, quiet=True)
    assert Settings.from_env(reader.environ, reader=reader).sampling.ratio == 0.1
    assert reader.problems == []

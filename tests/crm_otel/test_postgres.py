"""The PostgreSQL driver check: one line on stderr when Django's driver is not traced."""

from __future__ import annotations

import logging
import os
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from crm_otel import _postgres
from crm_otel._log import internal_logger
from crm_otel._postgres import disabled_instrumentations, is_instrumented, uncovered_warning
from crm_otel.metrics import first_in_server


@pytest.mark.parametrize(
    ("module", "instrumented", "disabled", "expected"),
    [
        ("psycopg", False, set(), "opentelemetry-instrumentation-psycopg==0.66b1"),
        ("psycopg2", False, set(), "opentelemetry-instrumentation-psycopg2==0.66b1"),
        ("psycopg", True, set(), None),
        ("psycopg2", True, set(), None),
        ("psycopg", False, {"psycopg"}, None),
        ("psycopg2", False, {"psycopg"}, "opentelemetry-instrumentation-psycopg2==0.66b1"),
        ("sqlite3", False, set(), None),
        (None, False, set(), None),
    ],
)
def test_warning_only_for_an_untraced_known_driver(
    module: str | None, instrumented: bool, disabled: set[str], expected: str | None
) -> None:
    """Only psycopg 3 or psycopg2 without an active, wanted instrumentation gets the line,
    and it names the package to install at the launcher's version."""
    message = uncovered_warning(module, instrumented, disabled, "0.66b1")
    if expected is None:
        assert message is None
    else:
        assert message is not None and f"pip install '{expected}'" in message
        assert "\n" not in message


def test_install_hint_without_a_known_version() -> None:
    """Without the launcher's version the hint names the package alone."""
    message = uncovered_warning("psycopg", False, set(), None)
    assert message is not None and "psycopg 3" in message
    assert message.endswith("pip install 'opentelemetry-instrumentation-psycopg'")


def test_disabled_instrumentations_are_read_like_the_launcher() -> None:
    """Names are split on commas and trimmed; `*` disables every driver's instrumentation."""
    env = {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": " redis , psycopg "}
    assert disabled_instrumentations(env) == {"redis", "psycopg"}
    assert disabled_instrumentations({}) == set()
    star = disabled_instrumentations({"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "*"})
    assert {"psycopg", "psycopg2"} <= star


def test_is_instrumented_follows_the_real_psycopg2_instrumentor() -> None:
    """The check asks the driver's real instrumentor whether it is active."""
    from opentelemetry.instrumentation.psycopg2 import Psycopg2Instrumentor

    instrumentor = Psycopg2Instrumentor()
    assert not is_instrumented("psycopg2")
    instrumentor.instrument(skip_dep_check=True)
    try:
        assert is_instrumented("psycopg2")
    finally:
        instrumentor.uninstrument()
    assert not is_instrumented("psycopg2")
    assert not is_instrumented("sqlite3")


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    """crm-otel's internal warnings, with the once-per-process check reset."""
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    internal_logger.addHandler(handler)
    _postgres._checked.clear()
    os.environ.pop("_CRM_OTEL_METRICS_GROUP", None)  # each process is its own server
    yield records
    internal_logger.removeHandler(handler)
    _postgres._checked.clear()


def test_said_once_at_the_first_postgresql_connection(warnings: list[str]) -> None:
    """The first PostgreSQL connection decides; later ones and other vendors say nothing."""
    from django.db.backends.signals import connection_created

    _postgres.watch_connections(first_in_server)
    sqlite = types.SimpleNamespace(vendor="sqlite", Database=types.ModuleType("sqlite3"))
    postgres = types.SimpleNamespace(vendor="postgresql", Database=types.ModuleType("psycopg"))
    connection_created.send(sender=None, connection=sqlite)
    assert warnings == []
    for _ in range(3):
        connection_created.send(sender=None, connection=postgres)
    assert len(warnings) == 1
    assert "psycopg 3" in warnings[0] and "opentelemetry-instrumentation-psycopg" in warnings[0]


def test_first_in_server_claims_once_per_group(tmp_path: Path) -> None:
    """Within one metrics group only the first claim of a key wins; no group, every one."""
    os.environ.pop("_CRM_OTEL_METRICS_GROUP", None)
    assert first_in_server("postgres-driver") and first_in_server("postgres-driver")
    (tmp_path / "g-1").mkdir()
    os.environ["CRM_OTEL_METRICS_DIR"] = str(tmp_path)
    os.environ["_CRM_OTEL_METRICS_GROUP"] = "g-1"
    assert first_in_server("postgres-driver")
    assert not first_in_server("postgres-driver")
    assert first_in_server("other-key")

"""Fixtures of the black-box tests: real PostgreSQL and Redis, a fresh OTLP receiver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.blackbox._harness import OtlpReceiver, require_services, reset_database, reset_redis


@pytest.fixture(scope="session")
def services() -> None:
    """PostgreSQL and Redis are up (under CI a missing one fails the run)."""
    require_services()


@pytest.fixture(scope="session")
def crm_database(services: None) -> None:
    """A freshly migrated PostgreSQL database for the example CRM."""
    reset_database()


@pytest.fixture
def crm(crm_database: None) -> None:
    """Real PostgreSQL migrated and an empty Redis database."""
    reset_redis()


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    """A fresh OTLP/HTTP receiver."""
    r = OtlpReceiver()
    yield r
    r.close()

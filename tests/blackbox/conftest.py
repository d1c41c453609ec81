"""Fixtures of the black-box tests: real PostgreSQL and Redis, a fresh OTLP receiver."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from tests.blackbox._harness import OtlpReceiver, reset_database, reset_redis


def _reachable(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def services() -> None:
    """PostgreSQL and Redis must be up: under CI a missing service fails, never skips."""
    missing = [
        name for name, port in (("PostgreSQL", 5432), ("Redis", 6379)) if not _reachable(port)
    ]
    if missing:
        message = f"not running on 127.0.0.1: {', '.join(missing)}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


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

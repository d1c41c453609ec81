"""Shared checks of the deployment tests: the Prometheus tools must exist under CI."""

from __future__ import annotations

import os

import pytest

from tests._prometheus import find_binary


def require_tool(name: str) -> str:
    """The path of `prometheus` or `promtool`; fail under `CI=true` when missing, else skip."""
    path = find_binary(name)
    if path is None:
        message = (
            f"{name} is not installed (Debian package `prometheus`: apt-get install prometheus)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path

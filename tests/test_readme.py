"""The README stays true to the code."""

from __future__ import annotations

from pathlib import Path

from crm_otel._doc import env_table
from crm_otel._variables import VARIABLES

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_env_table_is_current() -> None:
    """The README's variable table is exactly what the declarations generate."""
    assert env_table() in README, "run: python -m crm_otel._doc and paste it into README.md"


def test_every_variable_is_documented() -> None:
    """Every declared CRM_OTEL_* variable is named in the README."""
    missing = [name for name in VARIABLES if f"`{name}`" not in README]
    assert missing == []


def test_readme_test_command_is_what_ci_runs() -> None:
    """`.ci/run` runs the README's test command."""
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "scripts/test" in README and "exec scripts/test" in ci

"""The README documents every metric and every metrics variable."""

from __future__ import annotations

from pathlib import Path

from crm_otel._env import VARIABLES
from crm_otel.metrics import _settings
from semconv import metrics

DOC = (Path(__file__).resolve().parents[3] / "README.md").read_text()


def test_every_family_is_documented() -> None:
    """Each catalogue family has a row (name, type, labels, meaning) in the README."""
    for definition in metrics.CATALOGUE:
        assert f"| `{definition.prometheus_name}` |" in DOC, definition.prometheus_name
        assert definition.description in DOC, definition.prometheus_name


def test_every_variable_is_documented_with_its_default() -> None:
    """Each `CRM_OTEL_METRICS_*` variable has a row giving its default."""
    names = [v for k, v in vars(_settings).items() if k.startswith("CRM_OTEL_METRICS_")]
    assert len(names) == 10
    for name in names:
        default = VARIABLES[name].default
        row = next(line for line in DOC.splitlines() if line.startswith(f"| `{name}` |"))
        assert (f"`{default}`" in row) if default else ("unset" in row or "<tmp>" in row), row

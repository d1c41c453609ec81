"""The Prometheus rules of `deploy/prometheus`: valid, unit-tested with promtool, complete."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import require_tool

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULE_FILES = sorted(PROMETHEUS.glob("*.yml"))
RULE_FILES.remove(PROMETHEUS / "prometheus.yml")
TEST_FILES = sorted((PROMETHEUS / "tests").glob("*_test.yml"))

DESIGN_ALERTS = {
    "ServiceDown": "critical",
    "HighErrorRate": "critical",
    "DatabasePoolExhausted": "critical",
    "HighLatency": "warning",
    "LowCacheHitRate": "warning",
    "HighWorkflowFailureRate": "warning",
}
"""The six alerts of docs/design.md ("Dashboards and alerts") with their severities."""

SLO_ALERTS = {
    "ApiAvailabilityFastBurn",
    "ApiAvailabilitySlowBurn",
    "ApiLatencyFastBurn",
    "ApiLatencySlowBurn",
}

FIRST_SKETCHES = {
    "ServiceDown": ('up{job="crm-backend"} == 0', "1m"),
    "HighErrorRate": ("rate(http_errors_total[5m]) > 0.05", "5m"),
    "DatabasePoolExhausted": ("db_pool_exhausted_total > 0", "1m"),
    "HighLatency": ("histogram_quantile(0.95, http_request_duration_ms_bucket) > 1000", "10m"),
    "LowCacheHitRate": ("cache_hit_rate_gauge < 0.8", "15m"),
    "HighWorkflowFailureRate": ('rate(workflow_runs_total{status="failed"}[10m]) > 0.1', "5m"),
}
"""The first sketches of docs/design.md as written (HighLatency given `_bucket` so it parses)."""


def _rules(kind: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if kind in rule:
                    assert rule[kind] not in found, f"{rule[kind]} defined twice"
                    found[rule[kind]] = rule
    return found


def _promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    promtool = require_tool("promtool")
    return subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def _test_cases(path: Path) -> list[dict[str, Any]]:
    return list(yaml.safe_load(path.read_text())["tests"])


def test_promtool_check_rules() -> None:
    """`promtool check rules` accepts every rule file."""
    result = _promtool("check", "rules", *[p.name for p in RULE_FILES])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_FILES)


def test_promtool_check_config() -> None:
    """`promtool check config` accepts the compose stack's prometheus.yml and its rule files."""
    result = _promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    listed = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["rule_files"]
    assert sorted(listed) == [p.name for p in RULE_FILES]


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_test_rules(test_file: Path) -> None:
    """`promtool test rules` passes for each unit-test file."""
    result = _promtool("test", "rules", str(test_file.relative_to(PROMETHEUS)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_design_alert_exists_with_its_severity() -> None:
    """The six alerts of docs/design.md exist, with their designed severity and a runbook link."""
    alerts = _rules("alert")
    for name, severity in DESIGN_ALERTS.items():
        assert name in alerts, f"alert {name} of docs/design.md is missing"
        assert alerts[name]["labels"]["severity"] == severity
        assert alerts[name]["annotations"]["runbook_url"].startswith("docs/operations.md#")
    assert set(alerts) == set(DESIGN_ALERTS) | SLO_ALERTS


def test_every_runbook_link_has_a_section() -> None:
    """Each alert is documented in docs/operations.md, and its `runbook_url` anchor is a heading."""
    docs = PROMETHEUS.parents[1] / "docs" / "operations.md"
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in docs.read_text().splitlines()
        if line.startswith("#")
    }
    for name, rule in _rules("alert").items():
        path, anchor = rule["annotations"]["runbook_url"].split("#")
        assert path == "docs/operations.md" and anchor in anchors, name
        assert f"`{name}`" in docs.read_text() or f"### {name}" in docs.read_text(), name


def test_every_alert_has_a_firing_and_a_silent_unit_test() -> None:
    """Each alert is expected to fire in some promtool test and to stay silent in another."""
    fires: set[str] = set()
    silent: set[str] = set()
    for path in TEST_FILES:
        for case in _test_cases(path):
            for check in case.get("alert_rule_test", []):
                (fires if check["exp_alerts"] else silent).add(check["alertname"])
    alerts = set(_rules("alert"))
    assert alerts and fires and silent, "no alert or no promtool alert test was read"
    assert alerts - fires == set(), "alerts no test makes fire"
    assert alerts - silent == set(), "alerts no test keeps silent"


def test_every_recording_rule_is_tested_or_used() -> None:
    """Each recording rule is checked by a promql_expr_test, or feeds a tested rule or alert."""
    records = _rules("record")
    covered_text = " ".join(
        check["expr"]
        for path in TEST_FILES
        for case in _test_cases(path)
        for check in case.get("promql_expr_test", [])
    ) + " ".join(rule["expr"] for rule in _rules("alert").values())
    covered: set[str] = set()
    while True:
        found = {name for name in records if re.search(rf"{re.escape(name)}\b", covered_text)}
        if found == covered:
            break
        covered = found
        covered_text += " ".join(records[name]["expr"] for name in found)
    assert records and covered, "no recording rule or no test expression was read"
    assert set(records) - covered == set()


def test_burn_rate_windows_follow_the_sre_workbook() -> None:
    """Fast burn: 14.4x over 1h and 5m or 6x over 6h and 30m; slow: 3x 1d/2h or 1x 3d/6h."""
    alerts = _rules("alert")
    for slo, budget in (("availability", "0.001"), ("latency", "0.01")):
        fast = " ".join(alerts[f"Api{slo.title()}FastBurn"]["expr"].split())
        slow = " ".join(alerts[f"Api{slo.title()}SlowBurn"]["expr"].split())
        metric = f"job:api_{slo}_errors:ratio_rate"
        for window, factor in (("1h", "14.4"), ("5m", "14.4"), ("6h", "6"), ("30m", "6")):
            assert f"{metric}{window} > ({factor} * {budget})" in fast
        for window, factor in (("1d", "3"), ("2h", "3")):
            assert f"{metric}{window} > ({factor} * {budget})" in slow
        for window in ("3d", "6h"):
            assert f"{metric}{window} > {budget}" in slow
        assert alerts[f"Api{slo.title()}FastBurn"]["labels"]["severity"] == "critical"
        assert alerts[f"Api{slo.title()}SlowBurn"]["labels"]["severity"] == "warning"
    records = _rules("record")
    for slo in ("availability", "latency"):
        for window in ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"):
            assert f"job:api_{slo}_errors:ratio_rate{window}" in records
            assert f"[{window}]" in records[f"job:api_{slo}_errors:ratio_rate{window}"]["expr"]
        assert f"job:api_{slo}_error_budget_remaining:ratio" in records


def test_alerts_select_the_crm_backend_job() -> None:
    """Every raw selector of the designed alerts is scoped to `job="crm-backend"`."""
    for name in DESIGN_ALERTS:
        expr = _rules("alert")[name]["expr"]
        selectors = re.findall(r"\b([a-z_]+)\{([^}]*)\}", expr)
        assert selectors, name
        for metric, matchers in selectors:
            assert 'job="crm-backend"' in matchers, f"{name}: {metric}{{{matchers}}}"


def test_first_sketches_fail_the_unit_tests(tmp_path: Path) -> None:
    """The unit tests tell the first sketches of docs/design.md apart from the fixed rules."""
    (tmp_path / "tests").mkdir()
    shutil.copy(PROMETHEUS / "tests" / "alerts_test.yml", tmp_path / "tests")
    sketches = [
        {"alert": name, "expr": expr, "for": duration}
        for name, (expr, duration) in FIRST_SKETCHES.items()
    ]
    (tmp_path / "alerts.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "sketches", "rules": sketches}]})
    )
    result = _promtool("test", "rules", "tests/alerts_test.yml", cwd=tmp_path)
    assert result.returncode != 0
    for case in (
        "ServiceDown fires when the job has no target at all",
        "HighErrorRate stays silent at 0.1 errors per second",
        "DatabasePoolExhausted stays silent for an exhaustion long past",
        "HighLatency fires when p95 stays above 1000 ms",
        "LowCacheHitRate stays silent at 90 % hits",
        "HighWorkflowFailureRate stays silent at 1 % failures",
    ):
        assert case in result.stdout + result.stderr, f"the first sketch passes {case!r}"

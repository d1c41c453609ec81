"""`crm-otel check`."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from crm_otel._cli import check, mask_headers, mask_url


def test_check_passes_on_defaults() -> None:
    """With nothing set, check prints the defaults and exits 0."""
    out = io.StringIO()
    assert check({}, out) == 0
    text = out.getvalue()
    assert "CRM_OTEL_SAMPLING_RATIO" in text and "0.1  (default)" in text
    assert "OTEL_SERVICE_NAME" in text and "crm-backend" in text
    assert "all values are valid" in text


def test_check_fails_on_a_bad_value_and_names_it() -> None:
    """A bad value makes check exit 1 and say which variable, what was expected and given."""
    out = io.StringIO()
    assert check({"CRM_OTEL_SLOW_THRESHOLD_MS": "slow"}, out) == 1
    assert (
        "CRM_OTEL_SLOW_THRESHOLD_MS: expected a number of at least 0, got 'slow'" in out.getvalue()
    )


def test_check_rejects_the_dead_jaeger_exporter() -> None:
    """OTEL_TRACES_EXPORTER=jaeger is reported with the reason."""
    out = io.StringIO()
    assert check({"OTEL_TRACES_EXPORTER": "jaeger"}, out) == 1
    assert "Jaeger takes OTLP" in out.getvalue()


def test_check_masks_secrets() -> None:
    """Header values (tokens) never appear in check's output."""
    out = io.StringIO()
    check({"OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer s3cr3t,x-team=crm"}, out)
    assert "s3cr3t" not in out.getvalue()
    assert "authorization=***,x-team=***" in out.getvalue()  # the headers are shown, masked
    assert mask_headers("authorization=Bearer s3cr3t,x-team=crm") == "authorization=***,x-team=***"


def test_console_script_exit_code() -> None:
    """The installed `crm-otel` script exits 1 on a bad value."""
    script = Path(sys.executable).parent / "crm-otel"
    env = {"PATH": str(script.parent), "CRM_OTEL_KEEP_ERRORS": "sometimes"}
    result = subprocess.run(
        [str(script), "check"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "CRM_OTEL_KEEP_ERRORS: expected true or false, got 'sometimes'" in result.stdout


def test_check_masks_credentials_in_endpoints() -> None:
    """A token in the userinfo of an OTLP endpoint URL is not printed."""
    out = io.StringIO()
    check({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://crm:t0ken@collector:4318"}, out)
    assert "t0ken" not in out.getvalue()
    assert "https://crm:***@collector:4318" in out.getvalue()  # the endpoint is shown, masked
    assert mask_url("https://crm:t0ken@collector:4318/v1") == "https://crm:***@collector:4318/v1"
    assert mask_url("http://localhost:4318") == "http://localhost:4318"

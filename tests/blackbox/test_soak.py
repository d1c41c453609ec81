"""A one-minute soak: every signal reconciles exactly while the OTLP endpoint flaps."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.blackbox

SOAK = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"


def _soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("crm_otel_soak", SOAK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_one_minute_soak_reconciles_exactly(crm: None) -> None:
    """Under gunicorn (2 workers, recycled) and a prefork worker (children recycled), while
    the endpoint is healthy, refusing, silent and slow in turn (12 s each): spans, log
    records and metric points handed to the exporters equal those acknowledged plus those
    counted dropped, for web and Celery alike; error and slow traces arrive whole unless
    spans were counted dropped; `http_requests_total` equals the requests served; the
    metrics state files all parse."""
    soak = _soak()
    config = soak.Config(
        duration_s=60,
        phase_s=12,
        workers=2,
        concurrency=2,
        max_requests=100,
        max_tasks_per_child=5,
        rate=8,
        warmup_s=15,
    )
    result = soak.run(config, say=lambda *_: None)
    report = soak.render(result)
    phases = {key.split(" ")[0] for key in result.receiver}
    assert phases == set(soak.PHASES), report
    assert result.failures == [], report
    assert all(row["difference"] == 0 for row in result.reconciliation), report
    assert sum(row["dropped"] for row in result.reconciliation) > 0, report
    assert result.http_requests_total["prometheus"] == result.http_requests_total["served"]

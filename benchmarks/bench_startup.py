"""Startup cost of `opentelemetry-instrument` with crm-otel, against baselines in the same run.

Runs `manage.py check` of the example CRM (embedded SQLite defaults) N times each way and
prints medians and ratios:
  plain      python manage.py check
  otel-only  opentelemetry-instrument, crm-otel's distro and configurator not selected
             (instrumentations only, no SDK providers)
  crm-otel   opentelemetry-instrument with crm-otel (the default)

    python benchmarks/bench_startup.py [runs]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "crm"
BIN = Path(sys.executable).parent


def _time(args: list[str], env: dict[str, str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(args, cwd=EXAMPLE, env=env, check=True, capture_output=True, timeout=120)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CRM_OTEL_"))}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        DJANGO_SETTINGS_MODULE="crm.settings",
        CRM_SQLITE_PATH=os.path.join(tempfile.gettempdir(), "crm-otel-bench.sqlite3"),
        OTEL_TRACES_EXPORTER="none",
    )
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    check = ["python", "manage.py", "check"]
    instrument = [str(BIN / "opentelemetry-instrument"), *check]
    plain = _time(check, env, runs)
    otel_only = _time(
        instrument,
        {**env, "OTEL_PYTHON_DISTRO": "not-installed", "OTEL_PYTHON_CONFIGURATOR": "not-installed"},
        runs,
    )
    crm = _time(instrument, env, runs)
    print(f"runs per variant: {runs} (median wall time)")
    print(f"plain      {plain * 1000:8.0f} ms")
    print(f"otel-only  {otel_only * 1000:8.0f} ms   {otel_only / plain:5.2f}x plain")
    ratios = f"{crm / plain:5.2f}x plain, {crm / otel_only:5.2f}x otel-only"
    print(f"crm-otel   {crm * 1000:8.0f} ms   {ratios}")


if __name__ == "__main__":
    main()

"""The compatibility matrix: the built wheel on each supported Python, Django, PostgreSQL
driver and server, each row in a fresh venv made with the interpreter's own pip.

    scripts/test --matrix            # every row
    scripts/test --matrix -s oldest  # one row (nox's own options follow --matrix)

A row installs `dist/crm_otel-*.whl` (scripts/test builds it; built here when missing)
with the example CRM's extras, pins Django and the driver, and runs the black-box
compatibility test against the real PostgreSQL and Redis with the CRM launched from
that venv.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
DIST = ROOT / "dist"

nox.options.default_venv_backend = "venv"
nox.options.error_on_missing_interpreters = True
nox.options.reuse_existing_virtualenvs = False


@dataclass(frozen=True)
class Row:
    """One supported combination."""

    name: str
    python: str
    django: str
    driver: str  # psycopg2 or psycopg
    server: str  # gunicorn, gunicorn-preload or uvicorn
    redis_db: int
    extra: tuple[str, ...] = ()
    """Further pins (the oldest Celery the project supports, say)."""


ROWS = [
    Row("oldest", "3.11", "4.2", "psycopg2", "gunicorn", 1, ("celery==5.4.*", "kombu==5.4.*")),
    Row("py311-dj52-psycopg-preload", "3.11", "5.2", "psycopg", "gunicorn-preload", 2),
    Row("py312-dj52-psycopg2-uvicorn", "3.12", "5.2", "psycopg2", "uvicorn", 3),
    Row("py312-dj60-psycopg-gunicorn", "3.12", "6.0", "psycopg", "gunicorn", 4),
    Row("py313-dj52-psycopg2-preload", "3.13", "5.2", "psycopg2", "gunicorn-preload", 1),
    Row("py312-dj42-psycopg-uvicorn", "3.12", "4.2", "psycopg", "uvicorn", 3),
    Row("py313-dj61-psycopg-gunicorn", "3.13", "6.1", "psycopg", "gunicorn", 4),
    Row("newest", "3.13", "6.0", "psycopg", "uvicorn", 2),
]
"""The oldest and newest rows are the ones CI runs on every change."""

DRIVERS = {"psycopg2": "psycopg2-binary>=2.9", "psycopg": "psycopg[binary,pool]>=3.1.8"}


def _add_pyenv_interpreters() -> None:
    """Let nox find `python3.12` and friends installed by pyenv but not on PATH."""
    root = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=False)
    versions = Path(root.stdout.strip() or "~/.pyenv").expanduser() / "versions"
    extra = sorted(str(p) for p in versions.glob("3.1[1-9]*/bin"))
    os.environ["PATH"] = os.pathsep.join([*extra, os.environ.get("PATH", "")])


def _wheel() -> str:
    wheels = sorted(glob.glob(str(DIST / "crm_otel-*.whl")))
    if not wheels:
        build = [sys.executable, "-m", "build", "--outdir", str(DIST), str(ROOT)]
        subprocess.run(build, check=True)
        wheels = sorted(glob.glob(str(DIST / "crm_otel-*.whl")))
    return wheels[-1]


def _run_row(session: nox.Session, row: Row) -> None:
    wheel = _wheel()
    session.install(
        f"{wheel}[example]",
        f"django=={row.django}.*",
        DRIVERS[row.driver],
        *row.extra,
        # The test runner's own needs; the CRM's processes use only the wheel's.
        "pytest>=8",
        "opentelemetry-proto==1.45.1",
    )
    location = session.virtualenv.location
    session.run(
        "python",
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "tests/blackbox/test_compat.py",
        *session.posargs,
        env={
            "CRM_OTEL_TEST_VENV": location,
            "CRM_OTEL_TEST_SERVER": row.server,
            "CRM_OTEL_TEST_DRIVER": row.driver,
            "CRM_OTEL_TEST_DJANGO": row.django,
            "CRM_OTEL_TEST_SUFFIX": f"_{row.name.replace('-', '_')}",
            "CRM_OTEL_TEST_REDIS_DB": str(row.redis_db),
        },
    )


_add_pyenv_interpreters()
for _row in ROWS:

    def _session(session: nox.Session, row: Row = _row) -> None:
        _run_row(session, row)

    _session.__doc__ = f"Python {_row.python}, Django {_row.django}, {_row.driver}, {_row.server}"
    nox.session(name=_row.name, python=_row.python)(_session)

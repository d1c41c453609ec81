"""What `pip install crm-otel` gets: the built wheel and sdist hold every module."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("crm_otel", "sampling", "semconv")


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder holding the built sdist and wheel: CI's (`CRM_OTEL_TEST_DIST`), else
    built here with `python -m build`."""
    given = os.environ.get("CRM_OTEL_TEST_DIST")
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "-q", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


def _source_files() -> set[str]:
    files = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*"):
            wanted = path.suffix == ".py" or path.name == "py.typed"
            if wanted and path.is_file() and "__pycache__" not in path.parts:
                files.add(path.relative_to(ROOT).as_posix())
    return files


def _one(dist: Path, pattern: str) -> Path:
    found = sorted(dist.glob(pattern))
    assert len(found) == 1, f"expected one {pattern} in {dist}, found {found}"
    return found[0]


def test_source_tree_has_subpackages() -> None:
    """The comparison below is meaningful: the tree has modules below the top packages."""
    assert any(name.count("/") >= 2 for name in _source_files())


def test_wheel_holds_every_module(dist: Path) -> None:
    """Every module and `py.typed` of the three packages is in the wheel, and nothing else
    of the repository (tests, examples) is."""
    names = zipfile.ZipFile(_one(dist, "crm_otel-*.whl")).namelist()
    inside = {n for n in names if n.split("/")[0] in PACKAGES}
    assert _source_files() - inside == set()
    stray = {n.split("/")[0] for n in names if ".dist-info/" not in n} - set(PACKAGES)
    assert stray == set()


def test_sdist_holds_every_module(dist: Path) -> None:
    """The sdist (what a wheel is rebuilt from) holds every module too."""
    with tarfile.open(_one(dist, "crm_otel-*.tar.gz")) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    assert _source_files() - names == set()


def test_wheel_registers_distro_and_configurator(dist: Path) -> None:
    """The launcher finds crm-otel through the wheel's entry points."""
    wheel = zipfile.ZipFile(_one(dist, "crm_otel-*.whl"))
    entry_points = next(n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt"))
    text = wheel.read(entry_points).decode()
    assert "[opentelemetry_distro]\ncrm_otel = crm_otel._distro:CrmOtelDistro" in text
    assert "[opentelemetry_configurator]\ncrm_otel = crm_otel._configurator:" in text
    assert "crm-otel = crm_otel._cli:main" in text


def test_installed_wheel_imports_everything() -> None:
    """In the venv where CI installed the wheel, every module imports and `crm-otel check`
    passes (skipped outside CI's flow, which sets `CRM_OTEL_TEST_VENV`)."""
    venv = os.environ.get("CRM_OTEL_TEST_VENV")
    if not venv:
        pytest.skip("CRM_OTEL_TEST_VENV is not set (scripts/test sets it)")
    python = Path(venv) / "bin" / "python"
    modules = sorted(
        name.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        for name in _source_files()
        if name.endswith(".py")
    )
    script = "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)\n"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CRM_OTEL_"))}
    # From another folder, so the source tree is not on sys.path.
    result = subprocess.run(
        [str(python), "-c", script, *modules],
        cwd="/",
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    location = subprocess.run(
        [str(python), "-c", "import crm_otel; print(crm_otel.__file__)"],
        cwd="/",
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert location.stdout.startswith(str(Path(venv).resolve())) or location.stdout.startswith(
        venv
    ), location.stdout
    check = subprocess.run(
        [str(Path(venv) / "bin" / "crm-otel"), "check"],
        cwd="/",
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr

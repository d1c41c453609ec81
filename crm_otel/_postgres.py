"""Which PostgreSQL driver Django uses, and one line on stderr when nothing traces it.

Django picks psycopg 3 when it is installed and psycopg2 otherwise; each has its own
instrumentation. When the driver in use has none (not installed, skipped for a version
conflict, or failed), the CRM gets no database spans at all, silently: crm-otel says so
once per server, at the first PostgreSQL connection (by then every instrumentation that
is going to run has run).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from crm_otel._log import internal_logger


@dataclass(frozen=True)
class Driver:
    """A PostgreSQL driver and the instrumentation that traces it."""

    label: str
    entry_point: str
    """Name of its `opentelemetry_instrumentor` entry point (as in
    `OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`)."""
    distribution: str
    module: str
    instrumentor: str


DRIVERS: Mapping[str, Driver] = {
    "psycopg": Driver(
        "psycopg 3",
        "psycopg",
        "opentelemetry-instrumentation-psycopg",
        "opentelemetry.instrumentation.psycopg",
        "PsycopgInstrumentor",
    ),
    "psycopg2": Driver(
        "psycopg2",
        "psycopg2",
        "opentelemetry-instrumentation-psycopg2",
        "opentelemetry.instrumentation.psycopg2",
        "Psycopg2Instrumentor",
    ),
}
"""Drivers by the name of the module Django's PostgreSQL backend uses."""


def uncovered_warning(
    module: str | None,
    instrumented: bool,
    disabled: Collection[str],
    instrumentation_version: str | None,
) -> str | None:
    """The warning to give when Django's PostgreSQL driver `module` is not traced, or None.

    None when the driver is unknown (not psycopg or psycopg2), when its instrumentation
    is active, or when the user disabled it on purpose.
    """
    driver = DRIVERS.get(module or "")
    if driver is None or instrumented or driver.entry_point in disabled:
        return None
    pin = f"=={instrumentation_version}" if instrumentation_version else ""
    return (
        f"Django uses {driver.label} for PostgreSQL but no installed instrumentation traces "
        f"it: no database spans will be recorded; install it with "
        f"pip install '{driver.distribution}{pin}'"
    )


def is_instrumented(module: str) -> bool:
    """Whether the instrumentation of the driver `module` is active in this process."""
    driver = DRIVERS.get(module)
    if driver is None:
        return False
    # Never imported means never instrumented: no import here for a yes or no.
    loaded = sys.modules.get(driver.module)
    instrumentor = getattr(loaded, driver.instrumentor, None) if loaded else None
    if instrumentor is None:
        return False
    return bool(getattr(instrumentor(), "is_instrumented_by_opentelemetry", False))


def disabled_instrumentations(environ: Mapping[str, str]) -> set[str]:
    """The entry points named by `OTEL_PYTHON_DISABLED_INSTRUMENTATIONS` (`*` is all)."""
    value = environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "")
    names = {name.strip() for name in value.split(",") if name.strip()}
    return set(DRIVERS) if "*" in names else names


def _instrumentation_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("opentelemetry-instrumentation")
    except PackageNotFoundError:
        return None


_checked = threading.Event()


def _always(key: str) -> bool:
    return True


_first_in_server: Callable[[str], bool] = _always


def _on_connection_created(sender: Any = None, connection: Any = None, **_: Any) -> None:
    if _checked.is_set() or getattr(connection, "vendor", None) != "postgresql":
        return
    _checked.set()
    try:
        module = getattr(getattr(connection, "Database", None), "__name__", None)
        message = uncovered_warning(
            module,
            is_instrumented(module or ""),
            disabled_instrumentations(os.environ),
            _instrumentation_version(),
        )
        if message and _first_in_server("postgres-driver"):
            internal_logger.warning("%s", message)
    except Exception:  # telemetry never breaks the app's connection
        return


def watch_connections(first_in_server: Callable[[str], bool] = _always) -> None:
    """Check the driver at Django's first PostgreSQL connection in this process.

    `first_in_server(key)` says whether this process is the first of its server to claim
    `key` (the metrics' group), so that a server with many workers says it once.
    """
    global _first_in_server
    _first_in_server = first_in_server
    try:
        from django.db.backends.signals import connection_created
    except ImportError:
        return
    connection_created.connect(
        _on_connection_created, weak=False, dispatch_uid="crm_otel.postgres.driver"
    )

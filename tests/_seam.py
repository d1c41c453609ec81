"""Checks that the private names a seam module relies on are still where it expects."""

from __future__ import annotations

import importlib
import inspect
import re
from importlib import metadata


def installed(distribution: str) -> str | None:
    """The installed version of `distribution`, or None."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def missing(seam: str, distribution: str, module: str, qualname: str, attribute: str) -> str:
    """ "" when the name is there; else one line naming the name, the version and the seam.

    Without `attribute`, `module.qualname` must exist; with it, the code of
    `module.qualname` must set or read `.attribute`.
    """
    where = f"{module}.{qualname}" if qualname else module
    name = f"{where} (.{attribute})" if attribute else where
    moved = (
        f"{seam}: {name} is gone from {distribution} {installed(distribution)}; "
        f"update {seam} for this release"
    )
    try:
        found: object = importlib.import_module(module)
        for part in qualname.split(".") if qualname else ():
            found = getattr(found, part)
    except (ImportError, AttributeError):
        return moved
    if attribute:
        source = inspect.getsource(found)  # type: ignore[arg-type]
        if not re.search(rf"\.{re.escape(attribute)}\b", source):
            return moved
    return ""

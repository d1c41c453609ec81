"""Process metrics: resident memory and CPU time of this process, read at collection."""

from __future__ import annotations

import os
import resource
from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, Observation

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_memory_bytes() -> float:
    """Current resident set size (Linux `/proc`), else the peak from `getrusage`."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return float(int(handle.read().split()[1]) * _PAGE_SIZE)
    except (OSError, ValueError, IndexError):
        return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def observe_memory(options: CallbackOptions) -> Iterable[Observation]:
    """Observable callback of `process_resident_memory_bytes`."""
    return [Observation(resident_memory_bytes())]


def observe_cpu(options: CallbackOptions) -> Iterable[Observation]:
    """Observable callback of `process_cpu_seconds_total` (user + system)."""
    times = os.times()
    return [Observation(times.user + times.system)]

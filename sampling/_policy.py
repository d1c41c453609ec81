"""What the sampler keeps, and the bounds it keeps it within."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class SamplingPolicy:
    """The tail sampler's policy: what to keep and the caps on what it holds.

    Arguments are checked strictly (`ValueError` naming the field, what was expected and
    what was given); lenient parsing of environment variables is the caller's job.
    """

    ratio: float = 0.1
    """Share of ok, fast traces kept as the baseline (0.0 to 1.0)."""
    slow_threshold_ms: float = 2000.0
    """A trace whose local root lasts at least this long is kept."""
    keep_errors: bool = True
    """Keep every trace with an error (ERROR status, recorded exception, HTTP 5xx)."""
    keep_all: bool = False
    """Keep everything (development)."""
    max_buffered_spans: int = 20_000
    """Spans held across all undecided traces; reaching it forces decisions, oldest first."""
    max_spans_per_trace: int = 1_000
    """Spans held for one undecided trace; reaching it forces that trace's decision."""
    max_trace_age_ms: float = 30_000.0
    """Age after which an undecided trace is decided with what it has."""
    root_grace_ms: float = 50.0
    """After the local root ends, how long open children get to end before the decision."""
    decision_cache_size: int = 10_000
    """Decided traces remembered so that late spans follow their trace's decision."""
    export_queue_size: int = 8_192
    """Kept spans waiting for the exporter; a whole trace is released at once."""
    hold_ms: float = 30_000.0
    """How long a dropped trace that enqueued a task waits for the task's keep signal
    (0 turns holding off)."""
    max_held_spans: int = 10_000
    """Spans held across dropped traces waiting for a keep signal; beyond it the oldest
    are dropped for good."""

    def __post_init__(self) -> None:
        if not (isinstance(self.ratio, int | float) and 0.0 <= self.ratio <= 1.0):
            raise ValueError(f"ratio: expected a number from 0.0 to 1.0, got {self.ratio!r}")
        _positive("slow_threshold_ms", self.slow_threshold_ms, allow_zero=True)
        _positive("max_trace_age_ms", self.max_trace_age_ms)
        _positive("root_grace_ms", self.root_grace_ms, allow_zero=True)
        _positive("hold_ms", self.hold_ms, allow_zero=True)
        for name in (
            "max_buffered_spans",
            "max_spans_per_trace",
            "decision_cache_size",
            "export_queue_size",
            "max_held_spans",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a whole number of at least 1, got {value!r}")

    @classmethod
    def development(cls) -> SamplingPolicy:
        """The development policy: every trace is kept."""
        return cls(ratio=1.0, keep_all=True)


def _positive(name: str, value: object, *, allow_zero: bool = False) -> None:
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value >= 0 if allow_zero else value > 0)
    )
    if not ok:
        expected = "a number of at least 0" if allow_zero else "a number above 0"
        raise ValueError(f"{name}: expected {expected}, got {value!r}")

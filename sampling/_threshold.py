"""OpenTelemetry consistent probability sampling (OTEP 235): thresholds and randomness.

A trace is sampled at threshold `T` when its 56-bit randomness `R` satisfies `R >= T`.
`R` is the `rv` sub-key of the `ot` tracestate entry when present, else the
least-significant 56 bits of the trace id; `T` travels as the `th` sub-key, written as up
to 14 lowercase hex digits with trailing zeros removed (`th:0` means keep everything).
Every implementation of the same rule, in any language, keeps the same traces.
"""

from __future__ import annotations

from fractions import Fraction

from opentelemetry.trace import TraceState

MAX_THRESHOLD = 1 << 56
"""Threshold that samples nothing (not representable as `th`)."""

RANDOMNESS_MASK = MAX_THRESHOLD - 1
"""The trace-id bits that carry the randomness."""

OT_KEY = "ot"
"""The tracestate entry OpenTelemetry owns."""

_HEX_DIGITS = 14


def threshold_for(ratio: float) -> int:
    """The rejection threshold for a sampling `ratio`: `round((1 - ratio) * 2**56)`.

    Computed exactly (no float rounding beyond the ratio itself), so every process
    configured with the same ratio derives the same threshold.
    """
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"ratio: expected a number from 0.0 to 1.0, got {ratio!r}")
    return round((1 - Fraction(ratio)) * MAX_THRESHOLD)


def encode_threshold(threshold: int) -> str:
    """The `th` value for `threshold`: up to 14 hex digits, trailing zeros removed."""
    if not 0 <= threshold < MAX_THRESHOLD:
        raise ValueError(f"threshold: expected 0 <= threshold < 2**56, got {threshold!r}")
    return f"{threshold:014x}".rstrip("0") or "0"


def randomness(trace_id: int, trace_state: TraceState | None) -> int:
    """The trace's 56-bit randomness: the `ot` entry's `rv` when valid, else the trace id."""
    if trace_state is not None:
        entry = trace_state.get(OT_KEY)
        if entry is not None and "rv:" in entry:
            for member in entry.split(";"):
                key, _, value = member.partition(":")
                if key == "rv" and len(value) == _HEX_DIGITS:
                    try:
                        return int(value, 16)
                    except ValueError:
                        break
    return trace_id & RANDOMNESS_MASK


def with_threshold(trace_state: TraceState | None, th: str | None) -> TraceState:
    """`trace_state` with the `ot` entry's `th` set to `th` (or erased when None).

    Other `ot` sub-keys (such as `rv`) and other vendors' entries are kept.
    """
    state = trace_state if trace_state is not None else TraceState()
    entry = state.get(OT_KEY)
    others = [m for m in entry.split(";") if m and not m.startswith("th:")] if entry else []
    members = ([f"th:{th}"] if th is not None else []) + others
    if members:
        return state.update(OT_KEY, ";".join(members))
    if entry is not None:
        return state.delete(OT_KEY)
    return state

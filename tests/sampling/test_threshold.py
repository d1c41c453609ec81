"""OTEP 235 thresholds, randomness and the `ot` tracestate entry."""

from __future__ import annotations

import pytest
from opentelemetry.trace import TraceState

from sampling import encode_threshold, randomness, threshold_for
from sampling._threshold import MAX_THRESHOLD, with_threshold


@pytest.mark.parametrize(
    ("ratio", "th"),
    [
        (1.0, "0"),
        (0.5, "8"),
        (0.25, "c"),
        (0.75, "4"),
        (0.1, "e6666666666666"),
        (2**-56, "ffffffffffffff"),
    ],
)
def test_threshold_encoding(ratio: float, th: str) -> None:
    """The `th` value is round((1 - ratio) * 2**56) in hex, trailing zeros removed."""
    assert encode_threshold(threshold_for(ratio)) == th


def test_ratio_zero_samples_nothing() -> None:
    """Ratio 0 gives the threshold 2**56, above every randomness and not encodable."""
    assert threshold_for(0.0) == MAX_THRESHOLD
    with pytest.raises(ValueError, match="threshold"):
        encode_threshold(MAX_THRESHOLD)


def test_ratio_out_of_range_is_rejected() -> None:
    """A ratio outside 0..1 is a ValueError naming what was expected and given."""
    with pytest.raises(ValueError, match=r"ratio: expected a number from 0.0 to 1.0, got 1.5"):
        threshold_for(1.5)


def test_randomness_is_the_trace_ids_low_56_bits() -> None:
    """Without `rv`, the randomness is the least-significant 56 bits of the trace id."""
    assert randomness(0xABCD_0000_0000_0000_00FF_FFFF_FFFF_FFFF, None) == 0xFF_FFFF_FFFF_FFFF
    assert randomness(0x1234_5678_9ABC_DEF0_0112_2334_4556_6778, TraceState()) == 0x12233445566778


def test_rv_overrides_the_trace_id() -> None:
    """A valid `rv` sub-key of the `ot` entry is the randomness."""
    state = TraceState([("ot", "th:8;rv:0123456789abcd")])
    assert randomness(0xFFFF_FFFF_FFFF_FFFF, state) == 0x0123456789ABCD


def test_malformed_rv_falls_back_to_the_trace_id() -> None:
    """An `rv` that is not 14 hex digits is ignored."""
    for value in ("rv:123", "rv:zzzzzzzzzzzzzz"):
        assert randomness(0x42, TraceState([("ot", value)])) == 0x42


def test_with_threshold_keeps_other_members() -> None:
    """Setting `th` replaces the old one and keeps `rv` and other vendors' entries."""
    state = TraceState([("vendor", "x"), ("ot", "th:c;rv:0123456789abcd")])
    updated = with_threshold(state, "e666")
    assert updated.get("ot") == "th:e666;rv:0123456789abcd"
    assert updated.get("vendor") == "x"


def test_erasing_the_threshold_removes_an_empty_ot_entry() -> None:
    """Erasing `th` removes the `ot` entry when nothing else is in it."""
    assert with_threshold(TraceState([("ot", "th:8"), ("v", "1")]), None).get("ot") is None
    assert with_threshold(TraceState([("ot", "th:8;rv:0123456789abcd")]), None).get("ot") == (
        "rv:0123456789abcd"
    )

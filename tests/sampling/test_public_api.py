"""The `sampling` package's public API."""

from __future__ import annotations

import sampling


def test_all_is_sorted_and_lists_exactly_the_public_names() -> None:
    """`__all__` is sorted and equals the package's public (non-underscore, non-module) names."""
    public = {
        name
        for name, value in vars(sampling).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("sampling")
    }
    assert sampling.__all__ == sorted(sampling.__all__)
    assert set(sampling.__all__) == public

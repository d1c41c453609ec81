"""The `crm_otel.logs` package's public API."""

from __future__ import annotations

from types import ModuleType

from crm_otel import logs


def test_all_is_sorted_and_lists_exactly_the_public_names() -> None:
    """`__all__` is sorted and equals the package's public names: its own functions and
    classes and its upper-case constants, nothing imported for internal use."""
    public = {
        name
        for name, value in vars(logs).items()
        if not name.startswith("_")
        and not isinstance(value, ModuleType)
        and (
            (isinstance(value, str) and name.isupper())
            or getattr(value, "__module__", "").startswith("crm_otel.logs")
        )
    }
    assert logs.__all__ == sorted(logs.__all__)
    assert set(logs.__all__) == public

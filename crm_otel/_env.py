"""Environment variables: their registry, and lenient parsing that reports each bad value once.

Every `CRM_OTEL_*` variable is declared with `define`, which gives it a default and a
docstring-like description; the README table is checked against `VARIABLES`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from crm_otel._log import internal_logger

_T = TypeVar("_T")
_N = TypeVar("_N", int, float)


@dataclass(frozen=True)
class Variable:
    """One environment variable crm-otel reads."""

    name: str
    default: str
    description: str
    secret: bool = False
    standard: bool = False
    """A standard `OTEL_*` variable crm-otel also reads (not listed as crm-otel's own)."""


VARIABLES: dict[str, Variable] = {}
"""Every variable declared with `define`, by name, in declaration order."""


def define(
    name: str, default: str, description: str, *, secret: bool = False, standard: bool = False
) -> str:
    """Declare a variable and return its name, for use as a module constant."""
    VARIABLES[name] = Variable(name, default, description, secret, standard)
    return name


_builders: list[Callable[[EnvReader], object]] = []


def register_settings(build: Callable[[EnvReader], object]) -> None:
    """Register a settings builder, so that `crm-otel check` validates its variables."""
    _builders.append(build)


def settings_builders() -> list[Callable[[EnvReader], object]]:
    """Every registered settings builder, after importing the subsystems that register them."""
    import crm_otel._settings
    import crm_otel.logs
    import crm_otel.metrics  # noqa: F401

    return list(_builders)


_reported: set[tuple[str, str]] = set()
_reported_lock = threading.Lock()


def _report_once(line: str, key: tuple[str, str]) -> None:
    with _reported_lock:
        if key in _reported:
            return
        _reported.add(key)
    internal_logger.warning("%s", line)


@dataclass
class EnvReader:
    """Reads variables from `environ`, falling back to their declared default on bad input.

    Each problem is kept in `problems` and, unless `quiet`, reported once per process as
    one line naming the variable, the expected form and the value given.
    """

    environ: Mapping[str, str]
    quiet: bool = False
    problems: list[str] = field(default_factory=list)

    def raw(self, name: str) -> str | None:
        """The variable's value, or None when unset or blank."""
        value = self.environ.get(name)
        if value is None or not value.strip():
            return None
        return value.strip()

    def text(self, name: str) -> str:
        """The value as given, or the default."""
        value = self.raw(name)
        return VARIABLES[name].default if value is None else value

    def boolean(self, name: str) -> bool:
        """`true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`), any case."""
        return self._parse(name, "true or false", _parse_bool)

    def number(self, name: str, minimum: float, maximum: float = math.inf) -> float:
        """A finite number in [minimum, maximum]."""
        expected = (
            f"a number from {minimum:g} to {maximum:g}"
            if math.isfinite(maximum)
            else f"a number of at least {minimum:g}"
        )
        return self._parse(name, expected, lambda v: _in_range(float(v), minimum, maximum))

    def integer(self, name: str, minimum: int, maximum: int | None = None) -> int:
        """A whole number in [minimum, maximum]."""
        expected = (
            f"a whole number from {minimum} to {maximum}"
            if maximum is not None
            else f"a whole number of at least {minimum}"
        )
        top = math.inf if maximum is None else maximum
        return self._parse(name, expected, lambda v: int(_in_range(int(v), minimum, top)))

    def choice(self, name: str, choices: tuple[str, ...]) -> str:
        """One of `choices`, any case."""

        def parse(value: str) -> str:
            lowered = value.lower()
            if lowered not in choices:
                raise ValueError(value)
            return lowered

        return self._parse(name, "one of " + ", ".join(choices), parse)

    def parsed(self, name: str, expected: str, parse: Callable[[str], _T]) -> _T:
        """The value through `parse`, which raises ValueError on a bad value (described to
        the user as `expected`)."""
        return self._parse(name, expected, parse)

    def _parse(self, name: str, expected: str, parse: Callable[[str], _T]) -> _T:
        variable = VARIABLES[name]
        value = self.raw(name)
        if value is not None:
            try:
                return parse(value)
            except (ValueError, OverflowError):
                shown = "***" if variable.secret else repr(value)
                line = (
                    f"{name}: expected {expected}, got {shown}; "
                    f"using the default {variable.default!r}"
                )
                self.problems.append(line)
                if not self.quiet:
                    _report_once(line, (name, value))
        return parse(variable.default)


def _parse_bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ValueError(value)


def _in_range(value: _N, minimum: float, maximum: float) -> _N:
    if not (math.isfinite(value) and minimum <= value <= maximum):
        raise ValueError(value)
    return value

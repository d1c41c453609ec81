"""Lenient parsing of environment variables that reports each bad value once.

The variables themselves (name, default, meaning) are declared in `crm_otel._variables`.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from crm_otel._log import internal_logger
from crm_otel._variables import VARIABLES, Variable

# `VARIABLES` and `Variable` stay importable from here, where the readers of the registry
# found them before it became its own module.
__all__ = ["VARIABLES", "EnvReader", "Slot", "Variable"]

_T = TypeVar("_T")
_N = TypeVar("_N", int, float)
_S = TypeVar("_S")

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


class Slot(Generic[_S]):
    """A package's settings in effect in this process.

    `configure()` builds every package's settings from one environment and activates
    them; code that runs without it (the app's own `LOGGING`, a test) gets settings built
    from `os.environ` on first use, once.
    """

    def __init__(self, build: Callable[[Mapping[str, str]], _S]) -> None:
        self._build = build
        self._value: _S | None = None
        self._lock = threading.Lock()

    def activate(self, value: _S) -> None:
        """Make `value` the settings in effect."""
        self._value = value

    def current(self) -> _S:
        """The settings in effect, built from `os.environ` when none were activated."""
        value = self._value
        if value is None:
            with self._lock:
                value = self._value
                if value is None:
                    value = self._value = self._build(os.environ)
        return value

    def reset(self) -> None:
        """Forget the settings in effect (tests)."""
        self._value = None

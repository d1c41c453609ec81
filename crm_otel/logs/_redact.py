"""Redaction: values under sensitive keys become `[REDACTED]` in logs and span attributes."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[REDACTED]"
"""What a sensitive value is replaced with."""

BUILTIN_KEYS: tuple[str, ...] = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "authorization",
    "cookie",
    "apikey",
    "session",
    "csrf",
    "privatekey",
    "credential",
)
"""Key fragments always redacted, after normalisation (lower case, no `_ - .` or spaces)."""

_NORMALISE = re.compile(r"[^a-z0-9]")
# The key and separator of a `key=value` or `"key": "value"` pair in free text. The
# look-behind lets a key start only at the start of a word, which keeps the scan linear on
# hostile input (long word runs); values are matched separately, only after sensitive keys.
_KEY = re.compile(r"""(?<![\w.-])(?P<key>[\w.-]+)["']?[ \t]*[:=][ \t]*["']?""")
_VALUE = re.compile(r"""(?:(?:bearer|basic|digest|token)[ \t]+)?[^\s"',;&}]+""", re.IGNORECASE)
_MAX_DEPTH = 6
_KEY_CACHE_SIZE = 4096


def _normalise(key: str) -> str:
    return _NORMALISE.sub("", key.lower())


def _value_end(text: str, start: int, key: str) -> int | None:
    """Where the value that starts at `start` ends: at its closing quote when quoted (spaces
    included), at the end of the line for a cookie or authorization header (several
    cookies, `Bearer x`), else after one token."""
    if start > 0 and text[start - 1] in "\"'":
        close = text.find(text[start - 1], start)
        return close if close != -1 else _line_end(text, start)
    normalised = _normalise(key)
    if "cookie" in normalised or "authorization" in normalised:
        return _line_end(text, start)
    value = _VALUE.match(text, start)
    return None if value is None else value.end()


def _line_end(text: str, start: int) -> int:
    end = text.find("\n", start)
    return len(text) if end == -1 else end


class Redactor:
    """Decides which keys are sensitive and rewrites values under them.

    A key is sensitive when, lower-cased and stripped of everything but letters and
    digits, it contains one of the fragments (`X-API-Key` contains `apikey`,
    `http.request.header.authorization` contains `authorization`).
    """

    def __init__(self, extra_keys: Iterable[str] = ()) -> None:
        fragments = {*BUILTIN_KEYS, *(_normalise(k) for k in extra_keys)}
        self.fragments: tuple[str, ...] = tuple(sorted(f for f in fragments if f))
        self._cache: dict[str, bool] = {}
        # Guards only the cache's size check; lookups are lock-free dict reads.
        self._lock = threading.Lock()

    def is_sensitive(self, key: str) -> bool:
        """Whether values under `key` must be redacted."""
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        normalised = _normalise(key)
        sensitive = any(fragment in normalised for fragment in self.fragments)
        with self._lock:
            if len(self._cache) < _KEY_CACHE_SIZE:  # past the cap, keys are checked every time
                self._cache[key] = sensitive
        return sensitive

    def value(self, value: Any, depth: int = 0) -> Any:
        """`value` with every entry under a sensitive key of its mappings redacted."""
        if isinstance(value, Mapping):
            if depth >= _MAX_DEPTH:
                return REDACTED
            return {
                k: REDACTED if self.is_sensitive(str(k)) else self.value(v, depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):
            if depth >= _MAX_DEPTH:
                return REDACTED
            return [self.value(v, depth + 1) for v in value]
        return value

    def text(self, text: str) -> str:
        """`text` with the value of every `key=value` / `key: value` of a sensitive key redacted."""
        if "=" not in text and ":" not in text:  # the common case, without the regex
            return text
        parts: list[str] = []
        done = 0
        for match in _KEY.finditer(text):
            if match.start() < done or not self.is_sensitive(match.group("key")):
                continue
            end = _value_end(text, match.end(), match.group("key"))
            if end is None:
                continue
            parts += (text[done : match.end()], REDACTED)
            done = end
        if not parts:
            return text
        parts.append(text[done:])
        return "".join(parts)

    def fields(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Redact a flat mapping in place (values under sensitive keys, nested mappings)."""
        for key, value in fields.items():
            if self.is_sensitive(key):
                fields[key] = REDACTED
            elif isinstance(value, (Mapping, list, tuple)):
                fields[key] = self.value(value, 1)
        return fields

"""The logs settings in effect in this process, shared by formatters, handlers and processors."""

from __future__ import annotations

import os

from crm_otel import _settings
from crm_otel.logs._redact import Redactor
from crm_otel.logs._settings import LogSettings

_active: tuple[LogSettings, Redactor] | None = None


def activate(settings: LogSettings) -> Redactor:
    """Make `settings` the ones in effect; return the redactor built from them."""
    global _active
    redactor = Redactor(settings.redact_keys)
    _active = (settings, redactor)
    return redactor


def reset() -> None:
    """Forget the settings in effect (tests)."""
    global _active
    _active = None


def current() -> tuple[LogSettings, Redactor]:
    """The settings in effect, read from `os.environ` on first use when none were activated."""
    global _active
    active = _active
    if active is None:
        environment = _settings.ACTIVE.current().environment
        settings = LogSettings.from_env(os.environ, environment=environment)
        active = _active = (settings, Redactor(settings.redact_keys))
    return active

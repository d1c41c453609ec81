"""Settings of the logs subsystem, read from the environment."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from crm_otel._env import EnvReader
from crm_otel._settings import read_environment
from crm_otel._variables import (
    CRM_OTEL_CELERY_LOG_ARGS_TASKS,
    CRM_OTEL_LOG_FILE,
    CRM_OTEL_LOG_FILE_BACKUPS,
    CRM_OTEL_LOG_FILE_MAX_BYTES,
    CRM_OTEL_LOG_JSON,
    CRM_OTEL_LOG_LEVEL,
    CRM_OTEL_LOG_OWN_CONSOLE,
    CRM_OTEL_REDACT_KEYS,
)

DEFAULT_SERVICE_NAME = "crm-backend"
"""`service` of every line when neither `OTEL_SERVICE_NAME` nor the resource names one."""

_LEVELS = ("debug", "info", "warning", "error", "critical")


@dataclass(frozen=True)
class LogSettings:
    """The effective configuration of crm-otel's logs."""

    json: bool
    level: int
    service: str
    environment: str
    file: str | None
    file_max_bytes: int
    file_backups: int
    redact_keys: tuple[str, ...]
    celery_log_args_tasks: frozenset[str] = frozenset()
    own_console: bool = True
    """Keep crm-otel's handlers through the app's logging setup (the console piece)."""

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str],
        *,
        service: str | None = None,
        environment: str | None = None,
        reader: EnvReader | None = None,
    ) -> LogSettings:
        """Build the settings from `environ`; `service` (the resource's) wins when given,
        and `environment` is the core settings' when given (read once per process)."""
        env = reader or EnvReader(environ)
        extra_keys = tuple(
            key.strip() for key in env.text(CRM_OTEL_REDACT_KEYS).split(",") if key.strip()
        )
        return cls(
            json=env.boolean(CRM_OTEL_LOG_JSON),
            level=logging.getLevelName(env.choice(CRM_OTEL_LOG_LEVEL, _LEVELS).upper()),
            service=service or _service_name(environ),
            environment=environment or read_environment(env),
            file=env.raw(CRM_OTEL_LOG_FILE),
            file_max_bytes=env.integer(CRM_OTEL_LOG_FILE_MAX_BYTES, 1024),
            file_backups=env.integer(CRM_OTEL_LOG_FILE_BACKUPS, 1, 1000),
            redact_keys=extra_keys,
            celery_log_args_tasks=frozenset(
                name.strip()
                for name in env.text(CRM_OTEL_CELERY_LOG_ARGS_TASKS).split(",")
                if name.strip()
            ),
            own_console=env.boolean(CRM_OTEL_LOG_OWN_CONSOLE),
        )


def _service_name(environ: Mapping[str, str]) -> str:
    """`OTEL_SERVICE_NAME`, else `service.name` in `OTEL_RESOURCE_ATTRIBUTES`, else the default."""
    name = environ.get("OTEL_SERVICE_NAME", "").strip()
    if name:
        return name
    for pair in environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, _, value = pair.partition("=")
        if key.strip() == "service.name" and value.strip():
            return value.strip()
    return DEFAULT_SERVICE_NAME

"""Settings of the logs subsystem, read from the environment."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from crm_otel._env import EnvReader, define, register_settings
from crm_otel._settings import CRM_OTEL_ENVIRONMENT
from semconv.attributes import Environment

DEFAULT_SERVICE_NAME = "crm-backend"
"""`service` of every line when neither `OTEL_SERVICE_NAME` nor the resource names one."""

CRM_OTEL_LOG_JSON = define(
    "CRM_OTEL_LOG_JSON",
    "true",
    "Install crm-otel's JSON handlers (stdout, and the file when set) on the root logger; "
    "`false` leaves the app's logging alone (the OTel logs bridge still follows "
    "`OTEL_LOGS_EXPORTER`).",
)
CRM_OTEL_LOG_LEVEL = define(
    "CRM_OTEL_LOG_LEVEL",
    "INFO",
    "Least severe level crm-otel's handlers write: DEBUG, INFO, WARNING, ERROR or CRITICAL; "
    "also the level of crm-otel's own loggers (`crm.access`, `workflow`) unless the app sets "
    "theirs. No other logger's level is changed: the app's levels decide what is logged.",
)
CRM_OTEL_LOG_FILE = define(
    "CRM_OTEL_LOG_FILE",
    "",
    "Path of a rotating JSON log file written beside stdout; unset writes no file. "
    "`{pid}` in it is replaced by the process id (one file per gunicorn/Celery worker).",
)
CRM_OTEL_LOG_FILE_MAX_BYTES = define(
    "CRM_OTEL_LOG_FILE_MAX_BYTES",
    "10485760",
    "Size in bytes at which the log file is rotated (10 MB); at least 1024.",
)
CRM_OTEL_LOG_FILE_BACKUPS = define(
    "CRM_OTEL_LOG_FILE_BACKUPS",
    "10",
    "Rotated log files kept (`app.log.1` ... `app.log.N`, at least 1: with 0 Python never "
    "rotates); the oldest is deleted.",
)
CRM_OTEL_REDACT_KEYS = define(
    "CRM_OTEL_REDACT_KEYS",
    "",
    "Comma-separated key fragments redacted in addition to the built-in list "
    "(password, passwd, pwd, secret, token, authorization, cookie, api key, session, csrf, "
    "private key, credential); matching ignores case and `_`, `-`, `.` and spaces.",
)

CRM_OTEL_CELERY_LOG_ARGS_TASKS = define(
    "CRM_OTEL_CELERY_LOG_ARGS_TASKS",
    "",
    "Comma-separated Celery task names (`leads.tasks.score_new_lead`) whose arguments and "
    "return value may appear in Celery's task log lines and exception texts; every other "
    "task's are written as `[REDACTED]`.",
)

CRM_OTEL_LOG_OWN_CONSOLE = define(
    "CRM_OTEL_LOG_OWN_CONSOLE",
    "true",
    "With JSON logs on, keep crm-otel's handlers on the root logger after every "
    "`dictConfig`/`fileConfig`/`basicConfig` and Celery logging setup, and print each "
    "record once as JSON (the app's console handlers detached or given the JSON "
    "formatter); `false` patches nothing: put crm-otel's handlers in your `LOGGING` "
    "(`crm_otel.logs.django_logging()`).",
)

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

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str],
        *,
        service: str | None = None,
        reader: EnvReader | None = None,
    ) -> LogSettings:
        """Build the settings from `environ`; `service` (the resource's) wins when given."""
        env = reader or EnvReader(environ)
        extra_keys = tuple(
            key.strip() for key in env.text(CRM_OTEL_REDACT_KEYS).split(",") if key.strip()
        )
        return cls(
            json=env.boolean(CRM_OTEL_LOG_JSON),
            level=logging.getLevelName(env.choice(CRM_OTEL_LOG_LEVEL, _LEVELS).upper()),
            service=service or _service_name(environ),
            environment=env.choice(CRM_OTEL_ENVIRONMENT, tuple(e.value for e in Environment)),
            file=env.raw(CRM_OTEL_LOG_FILE),
            file_max_bytes=env.integer(CRM_OTEL_LOG_FILE_MAX_BYTES, 1024),
            file_backups=env.integer(CRM_OTEL_LOG_FILE_BACKUPS, 1, 1000),
            redact_keys=extra_keys,
            celery_log_args_tasks=frozenset(
                name.strip()
                for name in env.text(CRM_OTEL_CELERY_LOG_ARGS_TASKS).split(",")
                if name.strip()
            ),
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


register_settings(lambda reader: LogSettings.from_env(reader.environ, reader=reader))

"""crm-otel's log handlers, the Django `LOGGING` helper, and the zero-code console piece.

Installing JSON logging adds crm-otel's handlers to the root logger and sets the level of
crm-otel's own loggers (`crm.access`, `workflow`) when the app has not; it changes no
other logger's level or handlers, the root's included: loggers the app leaves quiet stay
quiet.

The console piece (`CRM_OTEL_LOG_OWN_CONSOLE`, on by default, for apps that change no
code) is the one place crm-otel touches the app's logging: after every
`dictConfig`/`fileConfig`/`basicConfig` (Django's `LOGGING`, Celery's worker setup) it puts
crm-otel's handlers back on the root logger; a console handler of the app's (a
`StreamHandler` on stdout or stderr) on a logger whose records reach the root is
detached; one on a logger that stops propagation (Django's `django.server`) stays and
gets the JSON formatter. Celery's `celery.task` logger is made to propagate. File, mail,
syslog and other handlers stay, with a redacting filter added. It never changes a level.
Turned off, nothing is patched and no Celery logging signal is connected: the app puts
crm-otel's handlers in its own `LOGGING` (`django_logging()`).
"""

from __future__ import annotations

import functools
import logging
import logging.config
import logging.handlers
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from crm_otel import _usage
from crm_otel._log import internal_logger
from crm_otel.logs import _tasks
from crm_otel.logs._formatter import JsonFormatter, RedactingFilter
from crm_otel.logs._settings import LogSettings
from sampling._fork import register_at_fork


def _real_stdout() -> TextIO:
    # Celery's worker replaces sys.stdout with a proxy that logs what is printed: a log
    # handler writing there would feed its own logger.
    stream = sys.stdout
    if type(stream).__name__ == "LoggingProxy" and sys.__stdout__ is not None:
        return sys.__stdout__
    return stream


class StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """JSON lines on the process's standard output."""

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(_real_stdout())
        self.setLevel(level)
        self.setFormatter(JsonFormatter())

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        _usage.note(_usage.LOG_LINES, 1.0, _usage.LOG_BYTES, len(line) + 1.0)
        return line


class RotatingFileHandler(logging.handlers.RotatingFileHandler):
    """JSON lines in a file rotated by size; creates the file's folder.

    `{pid}` in `filename` is replaced by the process id, also in processes forked later
    (gunicorn and Celery prefork children), so that each process writes and rotates its
    own file: Python's rotation is not safe with several processes on one file.
    """

    def __init__(
        self,
        filename: str,
        maxBytes: int = 10 * 1024 * 1024,
        backupCount: int = 10,
        level: int = logging.NOTSET,
    ) -> None:
        self._template = filename if "{pid}" in filename else None
        path = self._path(filename)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        super().__init__(
            path, maxBytes=maxBytes, backupCount=backupCount, encoding="utf-8", delay=True
        )
        self.setLevel(level)
        self.setFormatter(JsonFormatter())
        if self._template is not None:
            register_at_fork(after_in_child=self._reopen_in_child)

    def _path(self, filename: str) -> str:
        if self._template is None:
            return filename
        return self._template.replace("{pid}", str(os.getpid()))

    def _reopen_in_child(self) -> None:
        # The inherited stream is the parent's file: close this process's copy of it.
        stream, self.stream = self.stream, None
        if stream is not None:
            stream.close()
        self.baseFilename = os.path.abspath(self._path(self.baseFilename))


@dataclass
class Installation:
    """What `install` put in place, so that it can be kept there and taken back."""

    settings: LogSettings
    handlers: list[logging.Handler]
    formatter: JsonFormatter | None
    wrapped: dict[str, Callable[..., Any]] = field(default_factory=dict)
    celery_receivers: list[Any] = field(default_factory=list)
    leveled: list[logging.Logger] = field(default_factory=list)
    """crm-otel's own loggers whose level `install` set (the app had set none)."""
    console_detached: int = 0
    """App console handlers detached because their records reach crm-otel's root handler."""


_installed: Installation | None = None

OWN_LOGGERS: tuple[str, ...] = ("crm.access", "workflow")
"""crm-otel's own loggers (access lines, workflow events), set to `CRM_OTEL_LOG_LEVEL`
when the app has not given them a level."""


def installed() -> Installation | None:
    """The current installation, if any."""
    return _installed


def install(
    settings: LogSettings, bridge: logging.Handler | None, own_console: bool = True
) -> Installation:
    """Attach the JSON handlers (and `bridge`) to the root logger; with `own_console`, also
    keep them there and apply the console rule after every logging configuration.

    With JSON off and no bridge, nothing is installed and nothing is patched.
    """
    uninstall()
    global _installed
    handlers: list[logging.Handler] = []
    formatter: JsonFormatter | None = None
    if settings.json:
        stdout = StdoutHandler(settings.level)
        formatter = stdout.formatter  # type: ignore[assignment]
        handlers.append(stdout)
        if settings.file:
            try:
                handlers.append(
                    RotatingFileHandler(
                        settings.file,
                        settings.file_max_bytes,
                        settings.file_backups,
                        level=settings.level,
                    )
                )
            except OSError as exc:
                internal_logger.warning(
                    "CRM_OTEL_LOG_FILE=%r cannot be written (%s): logging to stdout only",
                    settings.file,
                    exc,
                )
    if bridge is not None:
        if settings.json:  # with JSON off, the bridge sees what the app's levels let through
            bridge.setLevel(settings.level)
        handlers.append(bridge)
    installation = Installation(settings, handlers, formatter)
    # Task values are noted for spans too, whatever happens to logging.
    installation.celery_receivers = _connect_celery(logging_signals=False)
    _installed = installation
    if not handlers:
        return installation
    root = logging.getLogger()
    for handler in handlers:
        root.addHandler(handler)
    if settings.json:
        for name in OWN_LOGGERS:
            logger = logging.getLogger(name)
            if logger.level == logging.NOTSET:
                logger.setLevel(settings.level)
                installation.leveled.append(logger)
    _tasks.install_filters()
    if own_console:
        for module, name in (
            (logging.config, "dictConfig"),
            (logging.config, "fileConfig"),
            (logging, "basicConfig"),
        ):
            original = getattr(module, name)
            installation.wrapped[name] = original
            setattr(module, name, _after(original, reconcile))
        installation.celery_receivers += _connect_celery(logging_signals=True)
        reconcile()
    return installation


def uninstall() -> None:
    """Take back what `install` did (tests, a second `setup_logging`)."""
    global _installed
    installation = _installed
    if installation is None:
        return
    _installed = None
    root = logging.getLogger()
    for handler in installation.handlers:
        root.removeHandler(handler)
        handler.close()
    for name, original in installation.wrapped.items():
        setattr(logging.config if name != "basicConfig" else logging, name, original)
    for signal, receiver in installation.celery_receivers:
        signal.disconnect(receiver)
    for logger in installation.leveled:
        if logger.level == installation.settings.level:
            logger.setLevel(logging.NOTSET)
    _tasks.remove_filters()


def _after(function: Callable[..., Any], then: Callable[[], None]) -> Callable[..., Any]:
    @functools.wraps(function)
    def configure(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        finally:
            then()

    return configure


def _connect_celery(*, logging_signals: bool) -> list[Any]:
    """Connect to Celery's `task_prerun` (task values), or with `logging_signals` to its
    logging setup signals (the console piece)."""
    try:
        from celery import signals
    except ImportError:
        return []

    def after_setup_logger(**_: Any) -> None:
        reconcile()

    def after_setup_task_logger(logger: logging.Logger | None = None, **_: Any) -> None:
        # Celery stops `celery.task` (the parent of every `get_task_logger` logger) from
        # propagating and gives it a console handler: its lines would miss the file and
        # the OTel bridge. That is Celery's default, not the app's choice: let them
        # propagate to crm-otel's handlers instead.
        installation = _installed
        if logger is not None and installation is not None and installation.formatter:
            for handler in list(logger.handlers):
                if _is_console(handler):
                    logger.removeHandler(handler)
                    installation.console_detached += 1
            logger.propagate = True
        reconcile()

    def task_prerun(
        task_id: str | None = None, task: Any = None, args: Any = None, kwargs: Any = None, **_: Any
    ) -> None:
        # Forgotten by crm-otel's Celery glue once the task's span has ended.
        _tasks.remember(task_id, getattr(task, "name", None), args, kwargs)

    # Not `setup_logging`: connecting to it would stop Celery configuring logging at all.
    receivers: tuple[tuple[Any, Callable[..., None]], ...] = (
        (
            (signals.after_setup_logger, after_setup_logger),
            (signals.after_setup_task_logger, after_setup_task_logger),
        )
        if logging_signals
        else ((signals.task_prerun, task_prerun),)
    )
    connected: list[Any] = []
    for signal, receiver in receivers:
        signal.connect(receiver, weak=False)
        connected.append((signal, receiver))
    return connected


def _is_console(handler: logging.Handler) -> bool:
    if not isinstance(handler, logging.StreamHandler) or isinstance(handler, logging.FileHandler):
        return False
    stream = handler.stream
    return stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__) or (
        type(stream).__name__ == "LoggingProxy"
    )


def _reaches_root(logger: logging.Logger) -> bool:
    current: logging.Logger | None = logger
    while current is not None and current.parent is not None:
        if not current.propagate:
            return False
        current = current.parent
    return True


def reconcile() -> None:
    """Put crm-otel's handlers back on the root logger and apply the console rule."""
    installation = _installed
    if installation is None:
        return
    root = logging.getLogger()
    for handler in installation.handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    _tasks.install_filters()
    # A disabled crm_otel logger (an app LOGGING with disable_existing_loggers) would hide
    # crm-otel's own warnings; it never reaches the app's handlers, so enabling it is safe.
    internal_logger.disabled = False
    if installation.formatter is None:
        return
    ours = set(installation.handlers)
    bridged = any(type(h).__name__ == "OtelLogHandler" for h in installation.handlers)
    files = {
        os.path.abspath(h.baseFilename)
        for h in installation.handlers
        if isinstance(h, logging.FileHandler)
    }
    loggers = [root] + [
        lg
        for lg in list(logging.Logger.manager.loggerDict.values())
        if isinstance(lg, logging.Logger)
    ]
    for logger in loggers:
        if logger is internal_logger:
            continue
        for handler in list(logger.handlers):
            if handler in ours:
                continue
            if _is_console(handler) and _reaches_root(logger):
                logger.removeHandler(handler)
                installation.console_detached += 1
                continue
            if _is_console(handler):
                handler.setFormatter(installation.formatter)
            if logger is root and (
                (
                    isinstance(handler, RotatingFileHandler)
                    and os.path.abspath(handler.baseFilename) in files
                )
                or (bridged and type(handler).__name__ == "OtelLogHandler")
            ):
                # The same file or bridge configured twice (the LOGGING helper and
                # CRM_OTEL_LOG_FILE / OTEL_LOGS_EXPORTER): every line would be doubled.
                logger.removeHandler(handler)
                handler.close()
                continue
            # The app's own handlers (its JSON file, mail) see secrets redacted too.
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())


def django_logging(
    *,
    level: str | None = None,
    file: str | None = None,
    max_bytes: int | None = None,
    backups: int | None = None,
    otel: bool | None = None,
) -> dict[str, Any]:
    """A Django `LOGGING` dict: JSON on stdout and, when `file` is given, a rotating file.

    `level` is the root logger's (this is the app's own configuration); defaults come from
    `CRM_OTEL_LOG_LEVEL`, `CRM_OTEL_LOG_FILE`, `..._MAX_BYTES` and `..._BACKUPS`. `otel`
    adds the OpenTelemetry logs bridge (by default when `OTEL_LOGS_EXPORTER` names an
    exporter). Existing loggers stay enabled; `django.server`'s lines go to the root;
    Celery's task lines lose the task's values.
    """
    settings = LogSettings.from_env(os.environ)
    file = file if file is not None else settings.file
    root_level = level or logging.getLevelName(settings.level)
    if otel is None:
        otel = os.environ.get("OTEL_LOGS_EXPORTER", "").strip().lower() not in ("", "none")
    handlers: dict[str, dict[str, Any]] = {
        "crm_otel_stdout": {"()": "crm_otel.logs.StdoutHandler"},
    }
    if file:
        handlers["crm_otel_file"] = {
            "()": "crm_otel.logs.RotatingFileHandler",
            "filename": file,
            "maxBytes": max_bytes if max_bytes is not None else settings.file_max_bytes,
            "backupCount": backups if backups is not None else settings.file_backups,
        }
    if otel:
        handlers["crm_otel_otlp"] = {"()": "crm_otel.logs.OtelLogHandler"}
    task_values = {"filters": ["crm_otel_task_values"]}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"crm_otel_task_values": {"()": "crm_otel.logs.TaskValuesFilter"}},
        "handlers": handlers,
        "root": {"handlers": list(handlers), "level": root_level},
        "loggers": {
            "django.server": {"handlers": [], "level": "INFO", "propagate": True},
            **{name: dict(task_values) for name in _tasks.TASK_LOGGERS},
        },
    }

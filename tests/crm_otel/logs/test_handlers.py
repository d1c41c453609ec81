"""Handlers on the root logger: stdout, the rotating file, survival of the app's LOGGING."""

from __future__ import annotations

import json
import logging
import logging.config
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource

from crm_otel._log import internal_logger
from crm_otel.logs import StdoutHandler, django_logging, setup_logging
from crm_otel.logs._handlers import installed

RESOURCE = Resource.create({"service.name": "crm-test"})


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_setup_installs_json_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    """After setup a record reaches stdout as one JSON line; the resource names the service."""
    setup_logging(RESOURCE, {}, {"CRM_OTEL_ENVIRONMENT": "staging"})
    logging.getLogger("crm.leads").warning("lead created")
    out = capsys.readouterr()
    [line] = _lines(out.out)
    assert line["message"] == "lead created"
    assert line["service"] == "crm-test" and line["environment"] == "staging"
    assert out.err == ""


def test_level_from_the_environment(capsys: pytest.CaptureFixture[str]) -> None:
    """`CRM_OTEL_LOG_LEVEL` is the least severe level crm-otel writes and the level of its
    own loggers; the root's level stays the app's; a bad value falls back to INFO."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)  # the app's choice
    setup_logging(RESOURCE, {}, {"CRM_OTEL_LOG_LEVEL": "warning"})
    logging.getLogger("crm").info("hidden")
    logging.getLogger("crm").warning("shown")
    assert [r["message"] for r in _lines(capsys.readouterr().out)] == ["shown"]
    assert root.level == logging.DEBUG
    assert logging.getLogger("crm.access").level == logging.WARNING
    setup_logging(RESOURCE, {}, {"CRM_OTEL_LOG_LEVEL": "chatty"})
    assert root.level == logging.DEBUG
    assert logging.getLogger("crm.access").level == logging.INFO
    [stdout] = [h for h in root.handlers if isinstance(h, StdoutHandler)]
    assert stdout.level == logging.INFO


def _loggers() -> dict[str, tuple[int, list[logging.Handler], bool, list[Any]]]:
    every = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    return {lg.name: (lg.level, list(lg.handlers), lg.propagate, list(lg.filters)) for lg in every}


def _quiet_app_loggers() -> tuple[logging.Logger, logging.Logger]:
    """weasyprint's shape: a package logger at WARNING with a NullHandler, its `progress`
    child at no level; and an app logger at no level under the root at WARNING."""
    logging.getLogger().setLevel(logging.WARNING)
    package = logging.getLogger("pdfkit_like")
    package.setLevel(logging.WARNING)
    package.addHandler(logging.NullHandler())
    return logging.getLogger("pdfkit_like.progress"), logging.getLogger("quiet_app.reports")


def test_installing_json_logging_changes_no_level_and_quiet_loggers_stay_quiet(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Zero-code setup changes no logger's level, the root's included (only crm-otel's
    own loggers get one): an INFO of a logger the app leaves quiet is not written, while a
    WARNING of the same logger is (positive control)."""
    progress, reports = _quiet_app_loggers()
    before = _loggers()
    setup_logging(RESOURCE, {}, {})
    after = _loggers()
    changed = {name for name in before if before[name][0] != after[name][0]}
    assert changed <= {"crm.access", "workflow"}, changed
    assert logging.getLogger().level == logging.WARNING
    for logger in (progress, reports):
        logger.info("Step 1 - Fetching")
        logger.warning("page too large")
    lines = _lines(capsys.readouterr().out)
    assert [(x["logger"], x["message"]) for x in lines] == [
        ("pdfkit_like.progress", "page too large"),
        ("quiet_app.reports", "page too large"),
    ]


def test_without_the_console_piece_nothing_but_crm_otels_handlers_changes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With `CRM_OTEL_LOG_OWN_CONSOLE=false`, JSON logging adds its handlers to the root
    and patches nothing: no logging config function, no Celery logging signal, and every
    other logger keeps its level, handlers (an app console handler included) and filters."""
    from celery import signals

    _quiet_app_loggers()
    app_console = logging.StreamHandler()
    logging.getLogger("crm").addHandler(app_console)
    functions = (logging.config.dictConfig, logging.config.fileConfig, logging.basicConfig)
    receivers = (
        list(signals.after_setup_logger.receivers),
        list(signals.after_setup_task_logger.receivers),
    )
    before = _loggers()
    setup_logging(RESOURCE, {}, {"CRM_OTEL_LOG_OWN_CONSOLE": "false"})
    after = _loggers()
    root_added = [h for h in after["root"][1] if h not in before["root"][1]]
    assert [type(h) for h in root_added] == [StdoutHandler]
    own = {"root", "crm.access", "workflow", "celery.app.trace", "celery.worker.strategy"}
    assert {name: after[name] for name in before if name not in own} == {
        name: value for name, value in before.items() if name not in own
    }
    assert logging.getLogger("crm").handlers == [app_console]
    assert (logging.config.dictConfig, logging.config.fileConfig, logging.basicConfig) == (
        functions
    )
    assert receivers == (
        list(signals.after_setup_logger.receivers),
        list(signals.after_setup_task_logger.receivers),
    )
    logging.getLogger("crm").warning("once")
    assert [r["message"] for r in _lines(capsys.readouterr().out)] == ["once"]


def test_json_off_leaves_logging_and_celery_logging_signals_untouched() -> None:
    """`CRM_OTEL_LOG_JSON=false` (no OTel bridge) changes no logger at all, patches no
    logging config function and connects no Celery logging signal."""
    from celery import signals

    _quiet_app_loggers()
    functions = (logging.config.dictConfig, logging.config.fileConfig, logging.basicConfig)
    receivers = (
        list(signals.after_setup_logger.receivers),
        list(signals.after_setup_task_logger.receivers),
    )
    before = _loggers()
    setup_logging(RESOURCE, {}, {"CRM_OTEL_LOG_JSON": "false"})
    assert _loggers() == before
    assert (logging.config.dictConfig, logging.config.fileConfig, logging.basicConfig) == (
        functions
    )
    assert receivers == (
        list(signals.after_setup_logger.receivers),
        list(signals.after_setup_task_logger.receivers),
    )
    # Positive control: the default setup does patch and connect, in this same run.
    setup_logging(RESOURCE, {}, {})
    assert logging.config.dictConfig is not functions[0]
    assert len(signals.after_setup_logger.receivers) == len(receivers[0]) + 1


APP_LOGGING: dict[str, Any] = {
    "version": 1,
    "formatters": {"plain": {"format": "PLAIN %(name)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "out": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "stream": "ext://sys.stdout",
        },
    },
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {
        "crm": {"handlers": ["out"], "level": "INFO"},
        "crm.quiet": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}


def test_app_logging_keeps_crm_otel_and_prints_each_record_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An app `LOGGING` that replaces the root's handlers and adds console handlers of its
    own still yields exactly one JSON line per record; a non-propagating logger keeps its
    console handler, now writing JSON."""
    setup_logging(RESOURCE, {}, {})
    logging.config.dictConfig(APP_LOGGING)  # what django.setup() does with LOGGING
    logging.getLogger("crm.leads").info("once")
    logging.getLogger("other").warning("root only")
    logging.getLogger("crm.quiet").info("quiet")
    out = capsys.readouterr()
    assert [r["message"] for r in _lines(out.out)] == ["once", "root only"]
    [quiet] = _lines(out.err)
    assert quiet["message"] == "quiet" and quiet["logger"] == "crm.quiet"
    assert "PLAIN" not in out.out + out.err
    installation = installed()
    assert installation is not None and installation.console_detached == 2


def test_disable_existing_loggers_does_not_silence_crm_otel() -> None:
    """An app config disabling existing loggers leaves crm-otel's own logger enabled."""
    setup_logging(RESOURCE, {}, {})
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": True})
    assert not internal_logger.disabled
    assert installed() is not None and any(
        isinstance(h, StdoutHandler) for h in logging.getLogger().handlers
    )


def test_basic_config_force_keeps_crm_otel(capsys: pytest.CaptureFixture[str]) -> None:
    """`basicConfig(force=True)` does not remove crm-otel's handler nor duplicate lines."""
    setup_logging(RESOURCE, {}, {})
    logging.basicConfig(force=True, format="PLAIN %(message)s")
    logging.getLogger("crm").warning("after basicConfig")
    out = capsys.readouterr()
    assert [r["message"] for r in _lines(out.out)] == ["after basicConfig"]
    assert "PLAIN" not in out.err


def test_internal_logger_never_reaches_the_root_handlers(
    capsys: pytest.CaptureFixture[str], records: list[logging.LogRecord]
) -> None:
    """crm-otel's own warnings never reach the root logger, so never its JSON handlers."""
    setup_logging(RESOURCE, {}, {})
    internal_logger.warning("internal trouble")
    logging.getLogger("crm").warning("app trouble")
    assert [r.getMessage() for r in records] == ["app trouble"]
    assert [r["message"] for r in _lines(capsys.readouterr().out)] == ["app trouble"]


def test_rotating_file_with_a_small_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The file rotates at `CRM_OTEL_LOG_FILE_MAX_BYTES` and keeps `..._BACKUPS` old files."""
    path = tmp_path / "logs" / "app.log"
    environ = {
        "CRM_OTEL_LOG_FILE": str(path),
        "CRM_OTEL_LOG_FILE_MAX_BYTES": "2048",
        "CRM_OTEL_LOG_FILE_BACKUPS": "2",
    }
    setup_logging(RESOURCE, {}, environ)
    logger = logging.getLogger("crm.rotation")
    logger.setLevel(logging.INFO)  # the app's level: crm-otel sets none
    for index in range(100):
        logger.info("line %03d", index, extra={"password": "hunter2"})
    for handler in logging.getLogger().handlers:
        handler.flush()
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["app.log", "app.log.1", "app.log.2"]
    messages = []
    for name in ("app.log.2", "app.log.1", "app.log"):
        content = (path.parent / name).read_text()
        assert len(content.encode()) <= 2048
        assert "hunter2" not in content
        messages += [r["message"] for r in _lines(content)]
    assert messages[-1] == "line 099"
    assert messages == [f"line {i:03d}" for i in range(100 - len(messages), 100)]
    assert len(_lines(capsys.readouterr().out)) == 100


def test_unwritable_file_falls_back_to_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """A log file that cannot be created is reported once and stdout logging goes on."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    setup_logging(RESOURCE, {}, {"CRM_OTEL_LOG_FILE": str(blocker / "app.log")})
    logging.getLogger("crm").warning("still logging")
    out = capsys.readouterr()
    assert [r["message"] for r in _lines(out.out)] == ["still logging"]
    assert "CRM_OTEL_LOG_FILE" in caplog.text and "cannot be written" in caplog.text


def test_django_logging_helper(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The helper's dict configures JSON on stdout and the rotating file by itself."""
    path = tmp_path / "app.log"
    config = django_logging(level="DEBUG", file=str(path), max_bytes=4096, backups=3)
    assert config["disable_existing_loggers"] is False
    logging.config.dictConfig(config)
    logging.getLogger("crm").debug("explicit")
    for handler in logging.getLogger().handlers:
        handler.flush()
    [line] = _lines(capsys.readouterr().out)
    assert line["message"] == "explicit" and line["level"] == "DEBUG"
    assert [r["message"] for r in _lines(path.read_text())] == ["explicit"]
    file_handler = next(h for h in logging.getLogger().handlers if hasattr(h, "maxBytes"))
    assert (file_handler.maxBytes, file_handler.backupCount) == (4096, 3)


def test_django_logging_helper_under_zero_code_does_not_duplicate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The helper's LOGGING applied under zero-code setup (same file) prints each record once."""
    path = tmp_path / "app.log"
    setup_logging(RESOURCE, {}, {"CRM_OTEL_LOG_FILE": str(path)})
    logging.config.dictConfig(django_logging(file=str(path)))
    logging.getLogger("crm").info("one")
    for handler in logging.getLogger().handlers:
        handler.flush()
    assert [r["message"] for r in _lines(capsys.readouterr().out)] == ["one"]
    assert [r["message"] for r in _lines(path.read_text())] == ["one"]


def test_pid_in_the_file_name_gives_each_forked_process_its_own_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`{pid}` in `CRM_OTEL_LOG_FILE` names the file after the process, and a forked child
    (a gunicorn or Celery prefork worker) switches to a file of its own."""
    import os

    setup_logging(RESOURCE, {}, {"CRM_OTEL_LOG_FILE": str(tmp_path / "app-{pid}.log")})
    logger = logging.getLogger("crm")
    logger.setLevel(logging.INFO)  # the app's level: crm-otel sets none
    logger.info("parent before fork")
    child = os.fork()
    if child == 0:  # the child: log, then leave without running pytest's teardown
        try:
            logger.info("child")
            for handler in logging.getLogger().handlers:
                handler.flush()
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    logger.info("parent after fork")
    for handler in logging.getLogger().handlers:
        handler.flush()
    parent_file = tmp_path / f"app-{os.getpid()}.log"
    child_file = tmp_path / f"app-{child}.log"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([parent_file.name, child_file.name])
    assert [r["message"] for r in _lines(parent_file.read_text())] == [
        "parent before fork",
        "parent after fork",
    ]
    assert [r["message"] for r in _lines(child_file.read_text())] == ["child"]


def test_the_apps_own_json_file_gets_secrets_redacted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A JSON file handler of the app's own `LOGGING` (python-json-logger's, as in
    docs/design.md, which prints `extra`) writes sensitive values redacted, and mapping
    arguments too."""
    path = tmp_path / "app.log"
    setup_logging(RESOURCE, {}, {})
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "json": {
                    "()": "pythonjsonlogger.json.JsonFormatter",
                    "format": "%(levelname)s %(name)s %(message)s",
                }
            },
            "handlers": {
                "file": {"class": "logging.FileHandler", "filename": str(path), "formatter": "json"}
            },
            "loggers": {"crm": {"handlers": ["file"], "level": "INFO"}},
        }
    )
    logger = logging.getLogger("crm.auth")
    logger.info("login", extra={"password": "hunter2", "profile": {"api_key": "k-1"}})
    logger.info("token %(token)s", {"token": "t0k3n"})
    for handler in logging.getLogger("crm").handlers:
        handler.flush()
    content = path.read_text()
    first, second = _lines(content)
    assert first["password"] == "[REDACTED]" and first["profile"] == {"api_key": "[REDACTED]"}
    assert second["message"] == "token [REDACTED]"
    assert "hunter2" not in content and "k-1" not in content and "t0k3n" not in content
    assert "hunter2" not in capsys.readouterr().out

"""Fixtures of the logs tests: crm-otel's logging installation taken back after each test."""

from __future__ import annotations

import json
import logging
import logging.config
from collections.abc import Iterator
from typing import Any

import pytest

from crm_otel._log import internal_logger
from crm_otel.logs import _handlers, _state


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Uninstall crm-otel's handlers and config wrappers, forget its settings, restore loggers."""
    config_functions = (logging.config.dictConfig, logging.config.fileConfig, logging.basicConfig)
    loggers = {
        name: (lg.handlers[:], lg.propagate, lg.level, lg.disabled)
        for name, lg in logging.Logger.manager.loggerDict.items()
        if isinstance(lg, logging.Logger)
    }
    root = logging.getLogger()
    root_handlers = root.handlers[:]
    _state.reset()
    yield
    _handlers.uninstall()
    for handler in root.handlers:
        if handler not in root_handlers:  # configured by the test (dictConfig): close files
            handler.close()
    root.handlers[:] = root_handlers
    _state.reset()
    logging.config.dictConfig, logging.config.fileConfig, logging.basicConfig = config_functions
    for name, lg in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(lg, logging.Logger):  # close what the test's configs opened
            before = loggers.get(name, ([], True, 0, False))[0]
            for handler in lg.handlers:
                if handler not in before:
                    handler.close()
            if name not in loggers:
                lg.handlers[:] = []
                lg.propagate, lg.level, lg.disabled = True, logging.NOTSET, False
    for name, (handlers, propagate, level, disabled) in loggers.items():
        lg = logging.getLogger(name)
        lg.handlers[:] = handlers
        lg.propagate, lg.level, lg.disabled = propagate, level, disabled
    internal_logger.disabled = False


class ListHandler(logging.Handler):
    """Keeps the records it receives."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    """Records reaching the root logger during the test."""
    handler = ListHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.DEBUG)
    yield handler.records
    root.removeHandler(handler)
    root.setLevel(level)


class JsonLinesHandler(logging.Handler):
    """Formats each record with crm-otel's formatter when it is emitted, as a real handler does."""

    def __init__(self) -> None:
        from crm_otel.logs import JsonFormatter

        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def lines() -> Iterator[list[dict[str, Any]]]:
    """JSON lines of the records reaching the root logger during the test."""
    handler = JsonLinesHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.DEBUG)
    yield handler.lines
    root.removeHandler(handler)
    root.setLevel(level)

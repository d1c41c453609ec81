"""Celery's worker logging setup (which empties the root logger) keeps crm-otel's handler."""

from __future__ import annotations

import json
import logging

import pytest
from celery import Celery
from celery.utils.log import get_task_logger
from opentelemetry.sdk.resources import Resource

from crm_otel.logs import StdoutHandler, setup_logging


def test_celery_hijacking_the_root_logger_keeps_one_json_line(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """With `worker_hijack_root_logger` (Celery's default) the worker's logging setup removes
    every root handler and adds its own console one; crm-otel puts its handler back and
    detaches Celery's, so each record is one JSON line, task loggers' lines included."""
    setup_logging(Resource.create({"service.name": "worker"}), {}, {})
    app = Celery("test-hijack", set_as_current=False)
    app.conf.worker_hijack_root_logger = True
    app.log.setup_logging_subsystem(loglevel="INFO", colorize=False)
    root = logging.getLogger()
    assert [type(h) for h in root.handlers] == [StdoutHandler]
    logging.getLogger("crm.tasks").info("scored lead 1")
    get_task_logger("leads.tasks").info("task logger line")
    out = capfd.readouterr()
    lines = [json.loads(x) for x in out.out.splitlines()]
    assert [(x["logger"], x["message"]) for x in lines] == [
        ("crm.tasks", "scored lead 1"),
        ("leads.tasks", "task logger line"),
    ]
    assert out.err == ""

"""Logs of the example CRM under `opentelemetry-instrument`: JSON lines, correlation ids from
request to Celery task, trace ids matching the spans, secrets redacted, rotation, OTLP logs."""

from __future__ import annotations

import json
import socket
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.blackbox._harness import (
    CrmProcess,
    OtlpReceiver,
    crm_env,
    get,
    running,
    server_span,
    start_web,
    start_worker,
)

pytestmark = pytest.mark.blackbox

SECRET = "hunter2"
HEADERS = {"X-Demo-User": "alice", "X-Demo-Org": "org-7", "Content-Type": "application/json"}


def _json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of `text` parsed as JSON; fails naming the first line that is not."""
    lines = []
    for line in text.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line[:300]!r}")
    return lines


def _lines_after(process: CrmProcess, offset: int) -> list[dict[str, Any]]:
    return _json_lines(process.output()[offset:])


def _one(lines: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    found = [x for x in lines if all(x.get(k) == v for k, v in fields.items())]
    assert len(found) == 1, f"{len(found)} lines with {fields}: {found}"
    return found[0]


def _raw_request(url: str, path: str, header_lines: list[bytes]) -> bytes:
    """A request sent byte for byte (urllib refuses header values with line breaks)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        request = b"GET " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        request += b"".join(line + b"\r\n" for line in header_lines) + b"Connection: close\r\n\r\n"
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_logs_end_to_end(crm: None, receiver: OtlpReceiver, tmp_path: Path) -> None:
    """Web and worker write only JSON lines; access lines carry the request's correlation id
    and its server span's ids (404 and 500 too); the task's line carries the correlation id
    of the request that sent it; OTLP log records carry the same trace ids."""
    web_env = crm_env(
        receiver, OTEL_LOGS_EXPORTER="otlp", CRM_OTEL_LOG_FILE=str(tmp_path / "web.log")
    )
    worker_env = crm_env(receiver, OTEL_LOGS_EXPORTER="otlp")
    with running(start_worker(worker_env)) as worker, running(start_web(web_env)) as web:
        web_offset, worker_offset = len(web.output()), len(worker.output())
        status, headers, body = get(
            web.url + "/api/v1/leads/",
            data=json.dumps({"name": "Ada", "email": "ada@example.com"}).encode(),
            headers={**HEADERS, "X-Correlation-ID": "req-logs-1"},
        )
        assert status == 201, body
        assert headers["X-Correlation-ID"] == "req-logs-1"
        assert get(web.url + "/no/such/page/", headers={"X-Correlation-ID": "req-404"})[0] == 404
        assert get(web.url + "/api/v1/boom/", headers={"X-Correlation-ID": "req-500"})[0] == 500
        # A 400 the view returns: Django would log it outside every middleware, span-less.
        assert (
            get(web.url + "/api/v1/login/", data=b"{}", headers={"X-Correlation-ID": "req-400"})[0]
            == 400
        )

        server = server_span(receiver, "req-logs-1")
        not_found = server_span(receiver, "req-404")
        boom = server_span(receiver, "req-500")
        bad = server_span(receiver, "req-400")

        lead_id = json.loads(body)["id"]

        def task_logged(_: OtlpReceiver) -> bool:
            return f'"scored lead {lead_id}"' in worker.output()[worker_offset:]

        receiver.wait_for(task_logged)

        def otlp_access_records(r: OtlpReceiver) -> list[dict[str, Any]]:
            return [
                x
                for x in r.log_records()
                if x["attributes"].get("crm.correlation_id") == "req-logs-1"
                and str(x["body"]).startswith(("POST", "scored lead"))
            ]

        otlp_access_records.__name__ = "OTLP records of req-logs-1"
        receiver.wait_for(lambda r: len(otlp_access_records(r)) >= 2)
        web_lines = _lines_after(web, web_offset)
        worker_lines = _lines_after(worker, worker_offset)

    access = _one(web_lines, logger="crm.access", correlation_id="req-logs-1")
    assert access["method"] == "POST" and access["path"] == "/api/v1/leads/"
    assert access["status_code"] == 201 and access["latency_ms"] > 0
    assert access["user_id"] and access["org_id"] == "org-7"
    assert access["remote_addr"] == "127.0.0.1" and access["user_agent"].startswith("Python-urllib")
    assert access["service"] == "crm-backend" and access["environment"] == "development"
    assert (access["trace_id"], access["span_id"]) == (server["trace_id"], server["span_id"])

    for correlation_id, span, status in (
        ("req-404", not_found, 404),
        ("req-500", boom, 500),
        ("req-400", bad, 400),
    ):
        line = _one(web_lines, logger="crm.access", correlation_id=correlation_id)
        assert line["status_code"] == status
        assert line["trace_id"] == span["trace_id"] != "0" * 32
        django_line = _one(web_lines, logger="django.request", correlation_id=correlation_id)
        assert django_line["trace_id"] == span["trace_id"]
    assert _one(web_lines, logger="crm.access", correlation_id="req-500")["exception_type"] == (
        "RuntimeError"
    )
    assert (
        "RuntimeError"
        in _one(web_lines, logger="django.request", correlation_id="req-500")["stack_trace"]
    )

    task_line = _one(worker_lines, message=f"scored lead {lead_id}")
    assert task_line["correlation_id"] == "req-logs-1"
    assert task_line["trace_id"] == server["trace_id"]

    records = otlp_access_records(receiver)
    assert {r["trace_id"] for r in records} == {server["trace_id"]}
    access_record = next(r for r in records if str(r["body"]).startswith("POST"))
    assert access_record["span_id"] == server["span_id"]
    assert access_record["attributes"]["http.route"] == "/api/v1/leads/"
    # One OTLP record per Python record: the bridge adds no duplicates.
    bodies = [r["body"] for r in receiver.log_records() if r["trace_id"] == server["trace_id"]]
    assert len(bodies) == len(set(bodies)), bodies
    file_lines = _json_lines((tmp_path / "web.log").read_text())
    assert _one(file_lines, logger="crm.access", correlation_id="req-logs-1") == access


def test_a_logger_the_app_leaves_quiet_stays_quiet(crm: None, receiver: OtlpReceiver) -> None:
    """A library logger with no level of its own, under the root's default WARNING (the
    example CRM's `LOGGING` turns up only `crm`), writes no INFO line under crm-otel; its
    WARNING in the same request is written, as JSON with the request's trace (positive
    control)."""
    with running(start_web(crm_env(receiver))) as web:
        offset = len(web.output())
        headers = {"X-Correlation-ID": "req-sheet"}
        assert get(web.url + "/api/v1/leads/7/sheet/", headers=headers)[0] == 200
        server = server_span(receiver, "req-sheet")
        lines = _lines_after(web, offset)
    warning = _one(lines, logger="pdfgen.progress", correlation_id="req-sheet")
    assert warning["level"] == "WARNING" and warning["message"] == "lead 7: image too wide, cropped"
    assert warning["trace_id"] == server["trace_id"]
    assert _one(lines, logger="crm.access", correlation_id="req-sheet")["status_code"] == 200
    assert [x["message"] for x in lines if x["logger"] == "pdfgen.progress"] == [warning["message"]]
    assert "Step 1 - Fetching" not in web.output()


def test_hostile_correlation_ids_are_not_echoed(crm: None, receiver: OtlpReceiver) -> None:
    """A correlation id with a line break, 10 KB or quotes is replaced by a UUID4 in the
    response and in the logs, and every line stays one valid JSON object."""
    with running(start_web(crm_env(receiver))) as web:
        offset = len(web.output())
        hostile_values = [
            b"evil\r\n injected: yes",  # obsolete line folding: the value spans two lines
            b"A" * 10_240,
            b'quo"te\'s{"level":"CRITICAL"}',
        ]
        replies = [
            _raw_request(web.url, "/healthz", [b"X-Correlation-ID: " + v]) for v in hostile_values
        ]
        lines = _lines_after(web, offset)
    for hostile, reply in zip(hostile_values, replies, strict=True):
        head = reply.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        assert head.startswith("HTTP/1.1 200"), head[:200]
        [echoed] = [
            h.split(":", 1)[1].strip()
            for h in head.split("\r\n")
            if h.lower().startswith("x-correlation-id:")
        ]
        assert uuid.UUID(echoed).version == 4
        assert hostile.decode() not in head
        _one(lines, logger="crm.access", correlation_id=echoed)
    text = json.dumps(lines)
    assert "injected" not in text and "A" * 200 not in text and "quo" not in text


def test_secrets_never_leave_the_process(crm: None, receiver: OtlpReceiver, tmp_path: Path) -> None:
    """A password logged in `extra`, an Authorization header, a session cookie and an API
    key in a query string appear nowhere: not on stdout, in the log file, the exported
    spans or the OTLP log records."""
    log_file = tmp_path / "web.log"
    env = crm_env(
        receiver,
        OTEL_LOGS_EXPORTER="otlp",
        CRM_OTEL_LOG_FILE=str(log_file),
        # Ask the Django instrumentation to record these headers on the server span.
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST="Authorization,Cookie,X-Api-Key",
    )
    with running(start_web(env)) as web:
        offset = len(web.output())
        status, _, body = get(
            web.url + "/api/v1/login/",
            data=json.dumps({"username": "ada", "password": SECRET}).encode(),
            headers={
                **HEADERS,
                "X-Correlation-ID": "req-login",
                "Authorization": f"Bearer {SECRET}-token",
                "Cookie": f"sessionid={SECRET}-cookie",
                "X-Api-Key": f"{SECRET}-key",
            },
        )
        assert status == 200, body
        search = web.url + f"/api/v1/search/?q=ada&api_key={SECRET}-query"
        assert get(search, headers={"X-Correlation-ID": "req-search"})[0] == 200
        search_span = server_span(receiver, "req-search")
        server = server_span(receiver, "req-login")
        receiver.wait_for(lambda r: any(x["body"] == "login" for x in r.log_records()), timeout=20)
        output = web.output()
    # Positive controls: the values were there to leak, and were redacted.
    login = _one(_json_lines(output[offset:]), message="login")
    assert login["password"] == "[REDACTED]" and login["username"] == "ada"
    assert server["attributes"]["http.request.header.authorization"] in (
        "[REDACTED]",
        ["[REDACTED]"],
    )
    assert server["attributes"]["http.request.header.cookie"] in ("[REDACTED]", ["[REDACTED]"])
    assert "api_key=[REDACTED]" in json.dumps(search_span["attributes"])
    [record] = [x for x in receiver.log_records() if x["body"] == "login"]
    assert record["attributes"]["password"] == "[REDACTED]"
    for where, text in (
        ("stdout", output),
        ("log file", log_file.read_text()),
        ("spans", json.dumps(receiver.spans(), default=str)),
        ("OTLP logs", json.dumps(receiver.log_records(), default=str)),
    ):
        assert SECRET not in text, f"{SECRET!r} leaked into {where}"


def test_file_rotates_with_a_small_size(crm: None, tmp_path: Path) -> None:
    """With a 4 KB limit and 2 backups the web process's file rotates, keeps 3 files, and
    every line in them is JSON."""
    path = tmp_path / "logs" / "web.log"
    env = crm_env(
        None,
        OTEL_TRACES_EXPORTER="none",
        CRM_OTEL_LOG_FILE=str(path),
        CRM_OTEL_LOG_FILE_MAX_BYTES="4096",
        CRM_OTEL_LOG_FILE_BACKUPS="2",
    )
    with running(start_web(env)) as web:
        for index in range(40):
            assert get(web.url + "/healthz", headers={"X-Correlation-ID": f"rot-{index}"})[0] == 200
    names = sorted(p.name for p in path.parent.iterdir())
    assert names == ["web.log", "web.log.1", "web.log.2"]
    lines = []
    for name in ("web.log.2", "web.log.1", "web.log"):
        content = (path.parent / name).read_text()
        assert len(content.encode()) <= 4096
        lines += _json_lines(content)
    correlation_ids = [x["correlation_id"] for x in lines if x["logger"] == "crm.access"]
    assert correlation_ids[-1] == "rot-39"


APP_LOGGING_SETTINGS = """
from crm.settings import *  # noqa: F403

# A CRM's own JSON LOGGING (docs/design.md, Logs), as a team would have it before crm-otel.
LOGGING = {
    "version": 1,
    "formatters": {
        "plain": {"format": "PLAIN %(levelname)s %(name)s %(message)s"},
        "json": {
            "class": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(levelname)s %(name)s %(message)s",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "file": {
            "class": "logging.handlers.RotatingFileHandler",
            "filename": LOG_PATH,
            "maxBytes": 10485760,
            "backupCount": 10,
            "formatter": "json",
        },
    },
    "loggers": {
        "django": {"handlers": ["console", "file"], "level": "INFO"},
        "workflow": {"handlers": ["console", "file"], "level": "INFO"},
        "crm": {"handlers": ["console", "file"], "level": "INFO"},
    },
}
"""


def test_an_app_with_its_own_logging_keeps_it_and_prints_each_line_once(
    crm: None, receiver: OtlpReceiver, tmp_path: Path
) -> None:
    """An app whose settings carry its own JSON `LOGGING` (console and JSON file handlers on
    the `django`, `workflow` and `crm` loggers) keeps its file, with secrets redacted, and
    stdout has each record once, as crm-otel's JSON, with no plain-text duplicate."""
    app_log = tmp_path / "app.log"
    (tmp_path / "crm_app_logging.py").write_text(
        f"LOG_PATH = {str(app_log)!r}\n" + APP_LOGGING_SETTINGS
    )
    env = crm_env(receiver, DJANGO_SETTINGS_MODULE="crm_app_logging", PYTHONPATH=str(tmp_path))
    with running(start_web(env)) as web:
        offset = len(web.output())
        data = json.dumps({"username": "ada", "password": SECRET}).encode()
        for index in range(3):
            get(web.url + "/api/v1/login/", data=data, headers={"X-Correlation-ID": f"own-{index}"})
        assert (
            get(web.url + "/api/v1/workflows/1/execute/", headers={"X-Correlation-ID": "own-wf"})[0]
            == 200
        )
        lines = _lines_after(web, offset)
    for index in range(3):
        _one(lines, logger="crm.leads", message="login", correlation_id=f"own-{index}")
        _one(lines, logger="crm.access", correlation_id=f"own-{index}")
    _one(lines, logger="workflow", correlation_id="own-wf")
    assert "PLAIN" not in web.output()
    file_lines = _json_lines(app_log.read_text())
    logins = [x for x in file_lines if x["message"] == "login"]
    assert len(logins) == 3 and {x["password"] for x in logins} == {"[REDACTED]"}
    assert any(x["name"] == "workflow" for x in file_lines)
    assert SECRET not in json.dumps(lines) and SECRET not in app_log.read_text()

"""Task arguments and results stay out of a real prefork worker's telemetry: Celery's own
`received` / `succeeded` / `raised` lines on stdout, in the log file and in OTLP log records,
and the task spans, unless the task is opted in."""

from __future__ import annotations

import json
import pickle
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.blackbox._harness import (
    REDIS_URL,
    CrmProcess,
    OtlpReceiver,
    crm_env,
    get,
    running,
    start_web,
    start_worker,
)

pytestmark = pytest.mark.blackbox

TASK = "leads.tasks.send_signin_code"


def _sign_in(web: CrmProcess, email: str) -> str:
    """Ask the CRM to mail a sign-in code to `email`; return the code it generated."""
    status, _, body = get(
        web.url + "/api/v1/signin/",
        data=json.dumps({"email": email}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert status == 202, body
    # The view keeps the code in the Django cache (pickled under Django's key format).
    stored = redis.Redis.from_url(REDIS_URL).get(f":1:signin-code:{email}")
    assert stored is not None
    code = pickle.loads(stored)
    assert isinstance(code, str) and len(code) == 6
    return code


def _found(secret: str, text: str) -> bool:
    """`secret` in `text` as a whole token (a 6-digit code inside a nanosecond timestamp or a
    hex trace id is not a leak)."""
    return re.search(rf"(?<![0-9a-zA-Z]){re.escape(secret)}(?![0-9a-zA-Z])", text) is not None


def _task_spans(receiver: OtlpReceiver, task_id: str) -> list[dict[str, Any]]:
    return [
        s
        for s in receiver.spans()
        if s["name"] == f"run/{TASK}" and s["attributes"].get("messaging.message.id") == task_id
    ]


def _run(
    receiver: OtlpReceiver, tmp_path: Path, **worker_vars: str
) -> tuple[dict[str, tuple[str, str]], str, str]:
    """Sign in twice (one mail sent, one refused) through a prefork worker; return the
    secrets by outcome and the worker's stdout and log files."""
    worker_env = crm_env(
        receiver,
        OTEL_LOGS_EXPORTER="otlp",
        CRM_OTEL_LOG_FILE=str(tmp_path / "worker-{pid}.log"),
        **worker_vars,
    )
    secrets: dict[str, tuple[str, str]] = {}
    with running(start_worker(worker_env)) as worker, running(start_web(crm_env(receiver))) as web:
        for outcome, domain in (("succeeded", "example.com"), ("raised", "mail.invalid")):
            email = f"ada-{uuid.uuid4().hex[:12]}@{domain}"
            secrets[outcome] = (email, _sign_in(web, email))
            worker.wait_output(f"] {outcome}", timeout=30)
        receiver.wait_for(
            lambda r: sum(s["name"] == f"run/{TASK}" for s in r.spans()) == 2, timeout=20
        )
        receiver.wait_for(
            lambda r: sum(" raised " in str(x["body"]) for x in r.log_records()) == 1, timeout=20
        )
        output = worker.output()
    files = "".join(p.read_text() for p in tmp_path.glob("worker-*.log"))
    return secrets, output, files


def test_task_arguments_and_results_never_leave_the_worker(
    crm: None, receiver: OtlpReceiver, tmp_path: Path
) -> None:
    """A sign-in code and an e-mail address passed to a task, returned by it and quoted in
    its exception appear nowhere (stdout, log file, OTLP log records, spans), while the
    task's name, id, state and runtime still do."""
    secrets, output, files = _run(receiver, tmp_path)
    for where, text in (
        ("stdout", output),
        ("log file", files),
        ("OTLP logs", json.dumps(receiver.log_records(), default=str)),
        ("spans", json.dumps(receiver.spans(), default=str)),
    ):
        assert TASK in text, f"the task name is missing from {where}"
        for outcome, values in secrets.items():
            for secret in values:
                assert not _found(secret, text), f"{secret!r} ({outcome}) leaked into {where}"
    lines = [json.loads(x) for x in output.splitlines() if x.startswith("{")]
    received = [x for x in lines if x["message"].endswith("] received")]
    succeeded = [x for x in lines if "] succeeded in " in x["message"]]
    raised = [x for x in lines if "] raised unexpected" in x["message"]]
    assert len(received) == 2 and len(succeeded) == 1 and len(raised) == 1, output[-4000:]
    task_id = succeeded[0]["data"]["id"]
    assert succeeded[0]["message"].startswith(f"Task {TASK}[{task_id}] succeeded in ")
    assert succeeded[0]["data"]["runtime"] > 0 and succeeded[0]["data"]["state"] == "SUCCESS"
    assert raised[0]["exception_type"] == "ValueError" and raised[0]["level"] == "ERROR"
    assert "[REDACTED]" in raised[0]["exception_message"]
    [span] = _task_spans(receiver, task_id)
    assert span["attributes"]["celery.task_name"] == TASK
    assert span["attributes"]["celery.state"] == "SUCCESS"
    [failed] = _task_spans(receiver, raised[0]["data"]["id"])
    assert failed["status_code"] == 2 and "[REDACTED]" in failed["status_message"]
    assert any(name == "exception" for name, _ in failed["events"])


def test_an_opted_in_task_logs_its_arguments(
    crm: None, receiver: OtlpReceiver, tmp_path: Path
) -> None:
    """A task named in `CRM_OTEL_CELERY_LOG_ARGS_TASKS` keeps Celery's lines as they were:
    its arguments and return value are logged."""
    secrets, output, _ = _run(receiver, tmp_path, CRM_OTEL_CELERY_LOG_ARGS_TASKS=TASK)
    email, code = secrets["succeeded"]
    assert _found(code, output) and _found(email, output)

"""Celery: task counts and durations from signals, queue lengths and the standalone port
in the worker's main process, and a last state write before a pool child leaves."""

from __future__ import annotations

import time
from typing import Any

from crm_otel._context import CELERY_ORG_HEADER
from crm_otel.metrics import _runtime, _tenants
from crm_otel.metrics._django import count_unhandled
from semconv.metrics import TaskStatus

MAX_RUNNING = 10_000
"""Start times kept for tasks that are running; beyond it a task's duration is not
recorded (it is still counted)."""

_started: dict[str, float] = {}
_usages: dict[str, Any] = {}


def _prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if _runtime.current() is None or task_id is None:
        return
    _runtime.in_app_work.set(True)
    if len(_started) < MAX_RUNNING:
        _started[task_id] = time.perf_counter()
        _usages[task_id] = _tenants.begin(_task_org(getattr(task, "request", None)))


def _task_org(request: Any) -> str | None:
    carried = getattr(request, CELERY_ORG_HEADER, None)
    if carried is None:  # an eager task runs inline, inside the request that sent it
        return _tenants.current_org()
    return _tenants.org_label(carried)


def _postrun(
    task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any
) -> None:
    runtime = _runtime.current()
    if runtime is None:
        return
    started = _started.pop(task_id, None) if task_id is not None else None
    name = runtime.instruments.task_label(getattr(task, "name", None) or "unknown")
    runtime.instruments.celery_tasks.add(1, {"task": name, "status": _status(state)})
    # Connected before the Celery instrumentation's handlers (setup precedes it), so the
    # task's span is still current: the duration's exemplar names it.
    elapsed = time.perf_counter() - started if started is not None else None
    if elapsed is not None:
        runtime.instruments.celery_task_duration.record(elapsed, {"task": name})
    usage = _usages.pop(task_id, None) if task_id is not None else None
    if usage is not None:
        _tenants.finish(usage, _tenants.TASKS, elapsed)
    else:
        _tenants.note(_tenants.TASKS, 1.0, _tenants.TASK_S, 0.0)
    _runtime.in_app_work.set(False)


def _status(state: str | None) -> str:
    try:
        return TaskStatus((state or "").lower()).value
    except ValueError:
        return TaskStatus.OTHER.value


def _failure(exception: BaseException | None = None, **_: Any) -> None:
    count_unhandled(exception)


def _revoked(request: Any = None, sender: Any = None, **_: Any) -> None:
    runtime = _runtime.current()
    if runtime is None:
        return
    name = getattr(sender, "name", None) or getattr(request, "task", None) or "unknown"
    labels = {"task": runtime.instruments.task_label(name), "status": TaskStatus.REVOKED.value}
    runtime.instruments.celery_tasks.add(1, labels)
    values = [0.0] * _tenants.SLOTS
    values[_tenants.TASKS] = 1.0
    table = _tenants.table()
    if table is not None:
        table.add(_task_org(request), values)


def _child_leaving(**_: Any) -> None:
    runtime = _runtime.current()
    if runtime is not None:
        runtime.recorder.flush()


def _worker_ready(sender: Any = None, instance: Any = None, **_: Any) -> None:
    runtime = _runtime.current()
    if runtime is None or instance is None:
        return
    app = instance.app
    queues = list(getattr(app.amqp, "queues", {}) or {}) or [app.conf.task_default_queue]
    broker_url = str(app.conf.broker_url or "")
    runtime.poller.watch_queues(broker_url, queues)
    runtime.poller.notice_url(broker_url)
    from crm_otel.metrics._server import start_standalone

    start_standalone(runtime)


def connect_signals() -> None:
    """Connect the handlers; Celery's signals exist before any app does."""
    try:
        from celery import signals
    except ImportError:
        return
    signals.task_prerun.connect(_prerun, weak=False, dispatch_uid="crm_otel.metrics.prerun")
    signals.task_postrun.connect(_postrun, weak=False, dispatch_uid="crm_otel.metrics.postrun")
    signals.task_failure.connect(_failure, weak=False, dispatch_uid="crm_otel.metrics.failure")
    signals.task_revoked.connect(_revoked, weak=False, dispatch_uid="crm_otel.metrics.revoked")
    signals.worker_process_shutdown.connect(
        _child_leaving, weak=False, dispatch_uid="crm_otel.metrics.child"
    )
    signals.worker_shutdown.connect(
        _child_leaving, weak=False, dispatch_uid="crm_otel.metrics.shutdown"
    )
    signals.celeryd_after_setup.connect(
        _worker_ready, weak=False, dispatch_uid="crm_otel.metrics.worker"
    )

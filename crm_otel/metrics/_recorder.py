"""This process's side of the state files: snapshots, the writer thread, fork handling."""

from __future__ import annotations

import atexit
import os
import secrets
import threading
import time
from typing import Any

from crm_otel._log import internal_logger
from crm_otel.metrics import _tenants
from crm_otel.metrics._exemplars import ExemplarStore
from crm_otel.metrics._from_sdk import from_metrics_data
from crm_otel.metrics._merge import OBSERVED, POLICY, Merge, ProcessState, merge
from crm_otel.metrics._store import GroupStore, MergeResult, file_name
from crm_otel.metrics._values import Families, subtract, sum_into
from sampling._fork import register_at_fork

_INHERITED = [n for n, p in POLICY.items() if p is not Merge.DERIVED and n not in OBSERVED]
"""Families whose SDK state a forked child inherits (synchronous instruments)."""
_SUMMED = [n for n, p in POLICY.items() if p is Merge.SUM]
"""Families an archive keeps: what a process whose file was archived must not repeat."""


class ProcessRecorder:
    """Turns the SDK's cumulative data into this process's state file, every interval.

    A forked child inherits its parent's SDK state; the parent's values at the fork are
    the child's baseline, subtracted from what the child writes, so nothing is counted
    twice. If a scrape archived this process's file (it looked dead: stopped for
    `STALE_AFTER_S`), the values archived join the baseline and a new file is started.
    """

    def __init__(
        self,
        store: GroupStore,
        reader: Any,
        interval_s: float,
        exemplars: ExemplarStore | None = None,
    ) -> None:
        self._store = store
        self._exemplars = exemplars
        self._reader = reader
        self._interval_s = interval_s
        # Held while collecting, writing and merging, and across fork, so a child never
        # inherits a half-taken snapshot or an open `flock`. Nothing under it calls out
        # except the SDK's collect and the state directory's files.
        self._lock = threading.Lock()
        self._baseline: Families = {}
        self._fork_snapshot: Families = {}
        self._last_written: Families = {}
        self._start_incarnation()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0
        self._closed = False
        self._start_thread()
        register_at_fork(
            before=self._before_fork,
            after_in_parent=self._after_fork_in_parent,
            after_in_child=self._after_fork_in_child,
        )
        atexit.register(self.flush)

    def _start_incarnation(self) -> None:
        self._pid = os.getpid()
        self._token = secrets.token_hex(6)
        self._previous: str | None = None

    @property
    def file_name(self) -> str:
        return file_name(self._pid, self._token)

    def _snapshot_locked(self) -> ProcessState:
        raw = from_metrics_data(self._reader.get_metrics_data())
        table = _tenants.table()
        if table is not None:
            raw.update(table.snapshot())
        families = subtract(raw, self._baseline, self._baseline)
        exemplars = self._exemplars.confirmed() if self._exemplars is not None else {}
        return ProcessState(self._pid, self._token, time.time(), families, exemplars)

    def flush(self) -> ProcessState | None:
        """Write the state file now (also called at exit and before a pool child leaves)."""
        if self._closed:
            return None
        with self._lock:
            return self._flush_locked()

    def _flush_locked(self) -> ProcessState | None:
        try:
            state = self._snapshot_locked()
            if not self._store.write(state, self._previous):
                # Archived while we were stopped: what it holds is counted already.
                sum_into(self._baseline, self._last_written, _SUMMED)
                self._start_incarnation()
                state = self._snapshot_locked()
                self._store.write(state, None)
            self._previous = self.file_name
            self._last_written = state.families
            self._failures = 0
            return state
        except Exception as exc:  # a full disk must not take the app down; said once
            self._failures += 1
            if self._failures == 1:
                internal_logger.warning(
                    "crm-otel cannot write its metrics state to %s (%s); scrapes miss this "
                    "process until it can",
                    self._store.directory,
                    exc,
                )
            return None

    def collect(self) -> MergeResult:
        """Merge every process of the group, this one from a fresh snapshot.

        Under the lock the fork hooks take: a child forked mid-merge would inherit the
        directory's exclusive `flock` and hold it for its whole life.
        """
        with self._lock:
            own = self._flush_locked() or self._snapshot_locked()
            try:
                return self._store.collect(own)
            except OSError:
                # The directory cannot be locked or read (read-only, gone): this process's
                # own counts are what the scrape can still say (the write failure was said).
                families, problems = merge({}, [own])
                return MergeResult(families, 1, 0, problems)

    def _start_thread(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="crm-otel-metrics-writer", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.flush()

    def shutdown(self) -> None:
        """Stop the writer thread after a last write."""
        self._stop.set()
        self.flush()
        self._closed = True

    def _before_fork(self) -> None:
        self._lock.acquire()
        try:
            raw = from_metrics_data(self._reader.get_metrics_data())
            self._fork_snapshot = {name: raw[name] for name in _INHERITED if name in raw}
        except Exception:  # never block a fork; the child then starts from zero
            self._fork_snapshot = {}

    def _after_fork_in_parent(self) -> None:
        self._fork_snapshot = {}
        self._lock.release()

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._baseline = self._fork_snapshot
        self._fork_snapshot = {}
        self._last_written = {}
        self._failures = 0
        self._start_incarnation()
        self._start_thread()

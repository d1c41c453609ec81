"""Per-process state files, and their merge at scrape time.

Each process of a group (a gunicorn master and its workers, a Celery worker and its pool
children) writes its cumulative state to its own file, `p-<pid>-<token>.json`, by atomic
rename, at most every write interval, at exit and before a pool child leaves. A scrape, in
whichever process it lands, reads every file of the group and merges them. Files of
processes that exited are folded into `archive.json` so their counts are never lost and
the directory stays bounded. A `flock` on `.lock` (exclusive for a scrape, shared for a
write) keeps a scrape from seeing a file both in the archive and on its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from crm_otel._log import internal_logger
from crm_otel.metrics import _tenant_ledger
from crm_otel.metrics._codec import families_from_json, families_to_json
from crm_otel.metrics._exemplars import (
    Exemplar,
    Key,
    exemplars_from_json,
    exemplars_to_json,
    merge_exemplars,
)
from crm_otel.metrics._merge import ProcessState, absorb, fold_open_labels, merge
from crm_otel.metrics._values import Families

STALE_AFTER_S = 30.0
"""A file not rewritten for this long belongs to a process that is gone (or whose pid was
reused): its counters go to the archive and its gauges stop counting."""

OLD_GROUP_AFTER_S = 3600.0
"""A sibling group directory untouched this long, with no live process, is removed."""

MAX_GROUPS_SCANNED = 100
"""Sibling group directories looked at per cleanup, so a cleanup stays cheap."""

ARCHIVE = "archive.json"
LOCK = ".lock"
PREFIX = "p-"
SUFFIX = ".json"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (ours or another user's)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def file_name(pid: int, token: str) -> str:
    """The state file name of one process incarnation."""
    return f"{PREFIX}{pid}-{token}{SUFFIX}"


@dataclass
class MergeResult:
    """What a scrape merged: the families, and how many processes were live and exited."""

    families: Families
    live: int
    archived: int
    problems: list[str] = field(default_factory=list)
    exemplars: dict[Key, Exemplar] = field(default_factory=dict)
    """One per bucket, from the live processes (an exited process's are let go)."""


class GroupStore:
    """The state directory of one group of processes."""

    def __init__(self, directory: str, label_cap: int = 100, tenants_top_n: int = 20) -> None:
        self.directory = directory
        self.label_cap = label_cap
        self.tenants_top_n = tenants_top_n
        os.makedirs(directory, mode=0o700, exist_ok=True)

    @contextlib.contextmanager
    def _locked(self, operation: int) -> Iterator[None]:
        # Opened per use: an fd inherited across fork would share its lock with the parent.
        fd = os.open(os.path.join(self.directory, LOCK), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, operation)
            yield
        finally:
            os.close(fd)

    def write(self, state: ProcessState, previous: str | None) -> bool:
        """Write `state` to its file; False when `previous` (this process's last file) was
        archived meanwhile, in which case nothing is written."""
        name = file_name(state.pid, state.token)
        path = os.path.join(self.directory, name)
        payload = json.dumps(
            {
                "pid": state.pid,
                "token": state.token,
                "written": state.written,
                "families": families_to_json(state.families),
                "exemplars": exemplars_to_json(state.exemplars),
            },
            separators=(",", ":"),
        )
        with self._locked(fcntl.LOCK_SH):
            if previous is not None and not os.path.exists(os.path.join(self.directory, previous)):
                return False
            temporary = path + ".tmp"
            with open(temporary, "w", encoding="utf-8") as handle:
                handle.write(payload)
            os.replace(temporary, path)
        return True

    def collect(self, own: ProcessState | None = None, now: float | None = None) -> MergeResult:
        """Merge every state file of the group (with `own` in place of its file)."""
        now = time.time() if now is None else now
        own_name = file_name(own.pid, own.token) if own is not None else None
        problems: list[str] = []
        with self._locked(fcntl.LOCK_EX):
            archive, absorbed = self._read_archive(problems)
            live: list[ProcessState] = [own] if own is not None else []
            exited: list[tuple[str, ProcessState]] = []
            for name in sorted(os.listdir(self.directory)):
                if not (name.startswith(PREFIX) and name.endswith(SUFFIX)) or name == own_name:
                    continue
                path = os.path.join(self.directory, name)
                if name in absorbed:
                    _unlink(path)
                    continue
                state = self._read_state(path, problems)
                if state is None:
                    continue
                if pid_alive(state.pid) and now - state.written < STALE_AFTER_S:
                    live.append(state)
                else:
                    exited.append((name, state))
            if exited:
                absorbed_archive, absorb_problems = absorb(archive, [s for _, s in exited])
                archive = fold_open_labels(absorbed_archive, self.label_cap, archive)
                archive = _tenant_ledger.bound(
                    archive, _tenant_ledger.capacity_for(self.tenants_top_n)
                )
                problems += absorb_problems
                kept = [n for n in absorbed if os.path.exists(os.path.join(self.directory, n))]
                self._write_archive(archive, kept + [n for n, _ in exited])
                for name, _ in exited:
                    _unlink(os.path.join(self.directory, name))
            families, merge_problems = merge(archive, live)
            families = fold_open_labels(families, self.label_cap, archive)
            ledger = _tenant_ledger.load(self.directory)
            families = _tenant_ledger.expose(families, ledger, self.tenants_top_n)
            _tenant_ledger.save(self.directory, ledger)
        exemplars = merge_exemplars(state.exemplars for state in live)
        return MergeResult(families, len(live), len(exited), problems + merge_problems, exemplars)

    def _read_archive(self, problems: list[str]) -> tuple[Families, set[str]]:
        path = os.path.join(self.directory, ARCHIVE)
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
            return families_from_json(data["families"]), set(data.get("absorbed", []))
        except FileNotFoundError:
            return {}, set()
        except (OSError, ValueError, TypeError, KeyError) as exc:
            problems.append(f"{path}: unreadable archive ({exc}); starting a new one")
            return {}, set()

    def _write_archive(self, archive: Families, absorbed: list[str]) -> None:
        path = os.path.join(self.directory, ARCHIVE)
        temporary = path + f".{os.getpid()}.tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(
                {"families": families_to_json(archive), "absorbed": absorbed},
                handle,
                separators=(",", ":"),
            )
        os.replace(temporary, path)

    def _read_state(self, path: str, problems: list[str]) -> ProcessState | None:
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
            return ProcessState(
                int(data["pid"]),
                str(data["token"]),
                float(data["written"]),
                families_from_json(data["families"]),
                exemplars_from_json(data.get("exemplars", ())),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError) as exc:
            # Only atomic renames put files here, so this is damage, not a half write.
            problems.append(f"{path}: unreadable state file ({exc}); removed")
            _unlink(path)
            return None


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def remove_old_groups(root: str, keep: str, now: float | None = None) -> int:
    """Remove sibling group directories of `root` left by servers long gone; returns how many."""
    now = time.time() if now is None else now
    removed = 0
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)[:MAX_GROUPS_SCANNED]
    except OSError:
        return 0
    for entry in entries:
        if entry.name == keep or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            if now - entry.stat().st_mtime < OLD_GROUP_AFTER_S:
                continue
            names = os.listdir(entry.path)
        except OSError:
            continue
        if any(_pid_of(name) is not None and pid_alive(_pid_of(name) or 0) for name in names):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed += 1
        internal_logger.debug("removed old metrics group %s", entry.path)
    return removed


def _pid_of(name: str) -> int | None:
    if not (name.startswith(PREFIX) and name.endswith(SUFFIX)):
        return None
    head = name[len(PREFIX) :].split("-", 1)[0]
    return int(head) if head.isdigit() else None

"""Merging the state files of many processes: exact sums, exited processes kept, bounded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from crm_otel.metrics._merge import ProcessState, absorb, merge
from crm_otel.metrics._store import STALE_AFTER_S, GroupStore, file_name, remove_old_groups
from crm_otel.metrics._values import Histogram, subtract

REQ = "http_requests_total"
LAT = "http_request_duration_ms"
CONN = "db_connections_active_gauge"
QUEUE = "celery_queue_length_gauge"
GET = (("method", "GET"), ("path", "/api/v1/leads/"), ("status", "200"))


def _state(
    pid: int, token: str, requests: float, *, written: float, conns: float = 0.0
) -> ProcessState:
    return ProcessState(pid, token, written, {REQ: {GET: requests}, CONN: {(): conns}})


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_counters_sum_and_live_gauges_sum_over_live_processes() -> None:
    """Counters add up over the archive and live processes; up-down gauges over live ones only."""
    merged, problems = merge(
        {REQ: {GET: 10.0}, CONN: {(): 99.0}},
        [_state(1, "a", 3, written=0, conns=2), _state(2, "b", 4, written=0, conns=1)],
    )
    assert problems == []
    assert merged[REQ][GET] == 17
    assert merged[CONN][()] == 3


def test_histograms_add_bucket_by_bucket() -> None:
    """Histogram buckets, sums and counts add; mismatched buckets are reported, not mixed."""
    a = Histogram((5.0, 10.0), (1, 2, 0), 17.0)
    b = Histogram((5.0, 10.0), (0, 1, 3), 60.0)
    odd = Histogram((1.0,), (1, 1), 3.0)
    merged, problems = merge({LAT: {GET: a}}, [ProcessState(1, "a", 0, {LAT: {GET: b}})])
    assert merged[LAT][GET] == Histogram((5.0, 10.0), (1, 3, 3), 77.0)
    assert merged[LAT][GET].count == 7
    _, problems = merge({LAT: {GET: a}}, [ProcessState(1, "a", 0, {LAT: {GET: odd}})])
    assert len(problems) == 1 and "bounds differ" in problems[0]


def test_latest_gauge_takes_the_freshest_process() -> None:
    """A value every process reads from Redis is taken from the most recent write, not summed."""
    old = ProcessState(1, "a", 100.0, {QUEUE: {(("queue", "celery"),): 7.0}})
    new = ProcessState(2, "b", 200.0, {QUEUE: {(("queue", "celery"),): 3.0}})
    merged, _ = merge({}, [new, old])
    assert merged[QUEUE] == {(("queue", "celery"),): 3.0}


def test_redis_evictions_never_go_backwards_whichever_worker_answers() -> None:
    """`cache_evictions_total`, polled by each worker at its own time, merges to the largest
    live value: a scrape answered by a worker that polled earlier never lowers it."""
    evictions = "cache_evictions_total"
    polled_early = ProcessState(1, "a", 300.0, {evictions: {(): 100.0}})
    polled_late = ProcessState(2, "b", 200.0, {evictions: {(): 150.0}})
    for order in ([polled_early, polled_late], [polled_late, polled_early]):
        merged, _ = merge({}, order)
        assert merged[evictions] == {(): 150.0}


def test_baseline_subtraction_leaves_only_the_childs_own_counts() -> None:
    """A forked child's inherited counts are subtracted; observed families are left alone."""
    current = {REQ: {GET: 12.0}, "process_cpu_seconds_total": {(): 0.5}}
    baseline = {REQ: {GET: 10.0}, "process_cpu_seconds_total": {(): 9.0}}
    child = subtract(current, baseline, [REQ])
    assert child[REQ][GET] == 2
    assert child["process_cpu_seconds_total"][()] == 0.5


def test_absorb_keeps_counters_and_drops_gauges_of_exited_processes() -> None:
    """An exited process's counters join the archive; its gauges do not."""
    archive, problems = absorb({REQ: {GET: 1.0}}, [_state(1, "a", 5, written=0, conns=4)])
    assert problems == []
    assert archive == {REQ: {GET: 6.0}}


def test_exited_process_counts_are_kept_and_counters_never_decrease(tmp_path: Path) -> None:
    """Across scrapes, a process that exits keeps its counts (moved to the archive, its file
    removed), and the merged counter never goes down."""
    store = GroupStore(str(tmp_path))
    now = 1_000_000.0
    me = os.getpid()
    dead = _dead_pid()
    store.write(_state(dead, "d0", 5, written=now, conns=2), None)
    store.write(_state(me, "m0", 3, written=now, conns=1), None)
    seen = []
    for step in range(3):
        result = store.collect(now=now + step)
        seen.append(result.families[REQ][GET])
        assert result.families[CONN][()] == 1  # the dead process's connection is gone
    assert seen == [8, 8, 8]
    names = sorted(os.listdir(tmp_path))
    assert file_name(dead, "d0") not in names and file_name(me, "m0") in names
    assert "archive.json" in names
    store.write(_state(me, "m0", 4, written=now + 5), file_name(me, "m0"))
    assert store.collect(now=now + 5).families[REQ][GET] == 9


def test_a_stale_file_of_a_live_pid_is_archived_and_its_writer_notices(tmp_path: Path) -> None:
    """A file not rewritten for STALE_AFTER_S is archived; its process's next write is
    refused (so it starts a new file and never counts the archived values twice)."""
    store = GroupStore(str(tmp_path))
    me = os.getpid()
    store.write(_state(me, "m0", 3, written=0.0), None)
    result = store.collect(now=STALE_AFTER_S + 1)
    assert result.archived == 1 and result.families[REQ][GET] == 3
    assert store.write(_state(me, "m0", 4, written=STALE_AFTER_S + 2), file_name(me, "m0")) is False


def test_own_state_replaces_own_file(tmp_path: Path) -> None:
    """The scraping process merges its fresh snapshot, not its older file."""
    store = GroupStore(str(tmp_path))
    me = os.getpid()
    store.write(_state(me, "m0", 3, written=10.0), None)
    result = store.collect(own=_state(me, "m0", 7, written=11.0), now=11.0)
    assert result.families[REQ][GET] == 7 and result.live == 1


def test_a_file_already_in_the_archive_is_not_counted_twice(tmp_path: Path) -> None:
    """If a scrape died between writing the archive and removing the files it absorbed, the
    next scrape removes them without adding them again."""
    store = GroupStore(str(tmp_path))
    dead = _dead_pid()
    store.write(_state(dead, "d0", 5, written=0.0), None)
    kept = (tmp_path / file_name(dead, "d0")).read_text()
    assert store.collect(now=1.0).families[REQ][GET] == 5
    (tmp_path / file_name(dead, "d0")).write_text(kept)  # as if the unlink never happened
    assert store.collect(now=2.0).families[REQ][GET] == 5
    assert not (tmp_path / file_name(dead, "d0")).exists()


def test_a_damaged_file_is_reported_and_removed(tmp_path: Path) -> None:
    """A state file that is not valid JSON is reported as a problem, removed, and the rest merge."""
    store = GroupStore(str(tmp_path))
    (tmp_path / "p-1-bad.json").write_text("{not json")
    store.write(_state(os.getpid(), "m0", 2, written=5.0), None)
    result = store.collect(now=5.0)
    assert result.families[REQ][GET] == 2
    assert len(result.problems) == 1 and "unreadable" in result.problems[0]
    assert not (tmp_path / "p-1-bad.json").exists()


def test_state_file_round_trips_through_json(tmp_path: Path) -> None:
    """What a process writes is what a scrape reads, histograms included."""
    store = GroupStore(str(tmp_path))
    hist = Histogram((5.0, 10.0), (1, 0, 2), 40.5)
    state = ProcessState(os.getpid(), "t", 1.0, {LAT: {GET: hist}, REQ: {GET: 2.0}})
    store.write(state, None)
    data = json.loads((tmp_path / file_name(os.getpid(), "t")).read_text())
    assert data["pid"] == os.getpid()
    merged = store.collect(now=1.0).families
    assert merged[LAT][GET] == hist and merged[REQ][GET] == 2.0


def test_old_groups_without_live_processes_are_removed(tmp_path: Path) -> None:
    """Group directories left by servers long gone are removed; live or recent ones stay."""
    dead, me = _dead_pid(), os.getpid()
    for name, pid in (("old-dead", dead), ("old-live", me), ("recent-dead", dead)):
        (tmp_path / name).mkdir()
        (tmp_path / name / file_name(pid, "x")).write_text("{}")
    old = 1_000.0
    os.utime(tmp_path / "old-dead", (old, old))
    os.utime(tmp_path / "old-live", (old, old))
    removed = remove_old_groups(str(tmp_path), keep="mine")
    assert removed == 1
    assert sorted(os.listdir(tmp_path)) == ["old-live", "recent-dead"]


def test_recycled_workers_cannot_grow_an_open_label_past_the_cap(tmp_path: Path) -> None:
    """Fifty exited workers, each within its own cap of 10 workflow names, leave at most 10
    named series plus `other` in what a scrape shows, and every run is still counted."""
    store = GroupStore(str(tmp_path), label_cap=10)
    runs = "workflow_runs_total"
    dead = _dead_pid()
    for worker in range(50):
        series = {
            (("status", "completed"), ("workflow", f"wf-{worker}-{n}")): 1.0 for n in range(10)
        }
        state = ProcessState(dead, f"t{worker}", 0.0, {runs: series})
        store.write(state, None)
        merged = store.collect().families
        assert len(merged[runs]) <= 11
    assert sum(merged[runs].values()) == 500
    named = {dict(labels)["workflow"] for labels in merged[runs]} - {"other"}
    assert len(named) == 10

"""The tail stage's bookkeeping on its own: fixed trace ids, fixed span times, injected clocks."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from opentelemetry.sdk.trace import ReadableSpan

from sampling import Reason, SamplingPolicy
from sampling._buffer import DROPPED, KEPT, Cap, TraceBuffer

MS = 1_000_000
"""One millisecond in nanoseconds."""
EPOCH = 1_700_000_000_000_000_000
"""Wall-clock start of every trace here (nanoseconds, as the SDK's span times)."""


class Clock:
    """A clock that moves only when a test moves it."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@dataclass
class Buffer:
    """A `TraceBuffer` with its clocks and everything it released or diverted."""

    buffer: TraceBuffer
    clock: Clock
    wall: Clock
    released: list[list[str]] = field(default_factory=list)

    def released_names(self) -> list[str]:
        return [name for batch in self.released for name in batch]

    def root(
        self, trace_id: int, duration_ms: float = 1.0, *, error: bool = False, start: int = EPOCH
    ) -> None:
        """A local root starts and ends (no children)."""
        self.buffer.started(trace_id, True, start)
        self.end(trace_id, f"root-{trace_id}", True, start, duration_ms, error=error)

    def end(
        self,
        trace_id: int,
        name: str,
        is_root: bool,
        start: int = EPOCH,
        duration_ms: float = 1.0,
        *,
        error: bool = False,
    ) -> bool:
        """A span of `trace_id` ends; what `ended` returned (a new grace needs a timer)."""
        span = ReadableSpan(name=name, start_time=start, end_time=start + int(duration_ms * MS))
        return self.buffer.ended(span, trace_id, is_root, error)


def make(**fields: object) -> Buffer:
    """A buffer over a policy with these fields; both clocks start at fixed values."""
    policy = SamplingPolicy(**fields)  # type: ignore[arg-type]
    clock, wall = Clock(10_000 * MS), Clock(EPOCH)
    released: list[list[str]] = []
    buffer = TraceBuffer(
        policy, lambda spans: released.append([s.name for s in spans]), clock, wall_clock=wall
    )
    return Buffer(buffer, clock, wall, released)


def test_ok_fast_trace_is_dropped_and_counted_when_its_root_ends() -> None:
    """A trace whose root ends with no open child is decided at once: ok and fast, dropped."""
    b = make()
    b.buffer.started(1, True, EPOCH)
    b.buffer.started(1, False, EPOCH)
    b.end(1, "SELECT", False)
    assert b.buffer.buffered == 1
    b.end(1, "GET", True, duration_ms=5)
    assert b.released == [] and b.buffer.buffered == 0
    assert b.buffer.decisions == {(DROPPED, "ok"): 1}
    assert b.buffer.forced == {}


def test_an_error_keeps_every_span_in_the_order_they_ended() -> None:
    """An error in any span keeps the whole trace, released in one batch."""
    b = make()
    b.buffer.started(2, True, EPOCH)
    for index in range(3):
        b.buffer.started(2, False, EPOCH)
        b.end(2, f"SELECT {index}", False, error=index == 1)
    b.end(2, "GET", True)
    assert b.released == [["SELECT 0", "SELECT 1", "SELECT 2", "GET"]]
    assert b.buffer.decisions == {(KEPT, "error"): 1}


def test_a_root_lasting_the_threshold_is_kept_and_one_just_under_is_not() -> None:
    """The slow rule compares the root's own duration with the threshold, at least counts."""
    b = make(slow_threshold_ms=100.0)
    b.root(3, duration_ms=100.0)
    b.root(4, duration_ms=99.999)
    assert b.released == [["root-3"]]
    assert b.buffer.decisions == {(KEPT, "slow"): 1, (DROPPED, "ok"): 1}


def test_an_open_child_gets_the_grace_then_the_trace_is_decided_without_it() -> None:
    """A root ending before its child starts one grace (one timer for the first one only);
    the trace is decided when the grace has run out, not before, and is not forced."""
    b = make(root_grace_ms=50.0)
    for trace_id in (5, 6):
        b.buffer.started(trace_id, True, EPOCH)
        b.buffer.started(trace_id, False, EPOCH)
    assert b.end(5, "GET", True) is True
    assert b.end(6, "GET", True) is False  # the first grace's timer covers it
    assert b.buffer.next_deadline() == b.clock.now + 50 * MS
    b.clock.now += 50 * MS - 1
    b.buffer.due()
    assert b.buffer.decisions == {} and b.buffer.buffered == 2
    b.clock.now += 1
    b.buffer.due()
    assert b.buffer.decisions == {(DROPPED, "ok"): 2}
    assert b.buffer.forced == {} and b.buffer.buffered == 0


def test_a_child_ending_within_the_grace_decides_at_once_and_its_error_counts() -> None:
    """The last open child ending in the grace decides the trace then, with its error."""
    b = make(root_grace_ms=50.0)
    b.buffer.started(7, True, EPOCH)
    b.buffer.started(7, False, EPOCH)
    b.end(7, "GET", True)
    b.end(7, "task", False, error=True)
    assert b.released == [["GET", "task"]]
    b.clock.now += 50 * MS
    b.buffer.due()  # the grace's deadline finds nothing left to decide
    assert b.buffer.decisions == {(KEPT, "error"): 1}


def test_the_span_cap_forces_the_trace_and_later_spans_follow_as_late() -> None:
    """At `max_spans_per_trace` the trace is decided before its root ended (forced, counted
    by cap); spans ending afterwards follow the decision and are counted as late."""
    b = make(max_spans_per_trace=3)
    b.buffer.started(8, True, EPOCH)
    for _ in range(4):
        b.buffer.started(8, False, EPOCH)
    for index in range(3):
        b.end(8, f"SELECT {index}", False)
    assert b.buffer.forced == {Cap.TRACE_SPANS.value: 1}
    assert b.buffer.decisions == {(DROPPED, Reason.FORCED.value): 1}
    b.end(8, "SELECT 3", False, error=True)  # too late to keep it
    b.end(8, "GET", True)
    assert b.released == [] and b.buffer.late == {DROPPED: 2} and b.buffer.buffered == 0


def test_the_buffer_cap_decides_the_oldest_trace_holding_spans_first() -> None:
    """Past `max_buffered_spans` traces are forced in the order they started, skipping those
    that hold no span yet (requests in flight), until the count is back under the cap."""
    b = make(max_buffered_spans=4)
    b.buffer.started(20, True, EPOCH)  # in flight, holds nothing
    for trace_id in (21, 22, 23):
        b.buffer.started(trace_id, True, EPOCH)
        b.buffer.started(trace_id, False, EPOCH)
        b.buffer.started(trace_id, False, EPOCH)
    b.end(21, "SELECT", False, error=True)
    b.end(22, "SELECT", False)
    b.end(21, "SELECT", False)
    b.end(23, "SELECT", False)
    assert b.buffer.buffered == 4 and b.buffer.forced == {}
    b.end(22, "SELECT", False)  # five held: the oldest holder (21) goes
    assert b.buffer.forced == {Cap.BUFFER.value: 1}
    assert b.released == [["SELECT", "SELECT"]]
    assert b.buffer.buffered == 3
    assert b.buffer.decisions == {(KEPT, "error"): 1}
    b.end(23, "SELECT", False)  # four again: nothing more is forced
    assert b.buffer.forced == {Cap.BUFFER.value: 1}
    b.buffer.started(24, False, EPOCH)
    b.end(24, "SELECT", False)  # five: 22, the oldest holder left, goes; 20 never does
    assert b.buffer.decisions == {(KEPT, "error"): 1, (DROPPED, "forced"): 1}
    assert b.buffer.forced == {Cap.BUFFER.value: 2}
    b.end(20, "GET", True, error=True)
    assert b.released[-1] == ["GET"]


def test_the_age_cap_forces_traces_as_old_as_the_limit_and_no_younger() -> None:
    """`due` forces the traces created `max_trace_age_ms` ago or earlier, oldest first."""
    b = make(max_trace_age_ms=1000.0)
    b.buffer.started(30, True, EPOCH)
    b.clock.now += 400 * MS
    b.buffer.started(31, True, EPOCH)
    assert b.buffer.next_deadline() == b.clock.now - 400 * MS + 1000 * MS
    b.clock.now += 599 * MS
    b.buffer.due()
    assert b.buffer.decisions == {}
    b.clock.now += 1 * MS
    b.buffer.due()
    assert b.buffer.forced == {Cap.TRACE_AGE.value: 1}
    assert b.buffer.decisions == {(DROPPED, "forced"): 1}
    assert b.buffer.next_deadline() == b.clock.now + 400 * MS


def test_a_forced_decision_keeps_an_open_root_that_is_already_slow() -> None:
    """A root still open when a cap decides its trace is kept if it has run past the slow
    threshold by the wall clock, and dropped one nanosecond earlier."""
    b = make(slow_threshold_ms=2000.0, max_trace_age_ms=1000.0)
    b.buffer.started(40, True, EPOCH)
    b.buffer.started(41, True, EPOCH + 1)
    b.wall.now = EPOCH + 2000 * MS
    b.clock.now += 1000 * MS
    b.buffer.due()
    assert b.buffer.decisions == {(KEPT, "slow"): 1, (DROPPED, "forced"): 1}
    assert b.buffer.forced == {Cap.TRACE_AGE.value: 2}
    b.end(40, "GET", True, duration_ms=2500)  # kept: the late root is released
    assert b.released_names() == ["GET"] and b.buffer.late == {KEPT: 1}


def test_flush_decides_everything_and_forces_only_open_roots() -> None:
    """`decide_all` decides every held trace; only those whose root had not ended count as
    forced by the flush."""
    b = make(root_grace_ms=50.0)
    b.buffer.started(50, True, EPOCH)
    b.buffer.started(50, False, EPOCH)
    b.end(50, "GET", True)  # in its grace: the root has ended
    b.buffer.started(51, True, EPOCH)
    b.buffer.started(51, False, EPOCH)
    b.end(51, "SELECT", False, error=True)
    b.buffer.decide_all()
    assert b.buffer.forced == {Cap.FLUSH.value: 1}
    assert b.buffer.decisions == {(DROPPED, "ok"): 1, (KEPT, "error"): 1}
    assert b.released == [["SELECT"]] and b.buffer.buffered == 0


def test_kept_traces_stay_kept_and_dropped_ones_get_a_new_local_root_decided_again() -> None:
    """Spans of a kept trace are released as late; a new local root of a dropped trace (a
    second task of one upstream trace) is held and decided afresh, and can be kept."""
    b = make()
    b.root(60, error=True)
    b.buffer.started(60, True, EPOCH)
    b.end(60, "second", True)
    assert b.released == [["root-60"], ["second"]] and b.buffer.late == {KEPT: 1}
    b.root(61)
    b.buffer.started(61, False, EPOCH)  # a child of the dropped part: follows it
    b.end(61, "child", False, error=True)
    assert b.buffer.late == {KEPT: 1, DROPPED: 1}
    b.buffer.started(61, True, EPOCH)
    b.end(61, "retry", True, error=True)
    assert b.released[-1] == ["retry"]
    assert b.buffer.decisions == {(KEPT, "error"): 2, (DROPPED, "ok"): 1}


def test_the_decision_cache_forgets_the_oldest_decision_past_its_size() -> None:
    """Past `decision_cache_size` the oldest decision is forgotten: a late span of that trace
    starts a trace of its own, while a remembered one still follows its decision."""
    b = make(decision_cache_size=2)
    for trace_id in (70, 71, 72):
        b.root(trace_id, error=True)
    b.end(71, "late-71", False)
    assert b.released[-1] == ["late-71"] and b.buffer.late == {KEPT: 1}
    b.end(70, "late-70", False)  # forgotten: held as a new, rootless trace
    assert b.buffer.late == {KEPT: 1} and b.buffer.buffered == 1


def test_a_span_the_buffer_never_saw_start_is_held_as_its_own_trace() -> None:
    """A span ending without `started` (it began before the processor) is held, not lost."""
    b = make()
    b.end(80, "orphan", False, error=True)
    assert b.buffer.buffered == 1
    b.buffer.decide_all()
    assert b.released == [["orphan"]]
    assert b.buffer.forced == {Cap.FLUSH.value: 1}


def test_divert_takes_decided_traces_before_release_and_announce_hears_each() -> None:
    """A diverting callback sees every decision with its spans; what it takes is not
    released; `announce` lists each decision in order."""
    offered: list[tuple[int, bool, Reason, list[str]]] = []

    def divert(trace_id: int, keep: bool, reason: Reason, spans: list[ReadableSpan]) -> bool:
        offered.append((trace_id, keep, reason, [s.name for s in spans]))
        return trace_id == 91

    released: list[list[str]] = []
    buffer = TraceBuffer(
        SamplingPolicy(),
        lambda spans: released.append([s.name for s in spans]),
        Clock(0),
        divert,
        wall_clock=Clock(EPOCH),
    )
    buffer.announce = []
    b = Buffer(buffer, Clock(0), Clock(EPOCH), released)
    b.root(90, error=True)
    b.root(91, error=True)
    b.root(92)
    assert offered == [
        (90, True, Reason.ERROR, ["root-90"]),
        (91, True, Reason.ERROR, ["root-91"]),
        (92, False, Reason.OK, ["root-92"]),
    ]
    assert released == [["root-90"]]
    assert buffer.announce == [
        (90, True, Reason.ERROR),
        (91, True, Reason.ERROR),
        (92, False, Reason.OK),
    ]


@pytest.mark.parametrize("reason", list(Reason))
def test_count_adds_one_per_call_under_its_decision_and_reason(reason: Reason) -> None:
    """`count` (used for traces the head stage kept) adds to the same table as decisions."""
    b = make()
    b.buffer.count(KEPT, reason)
    b.buffer.count(KEPT, reason)
    assert b.buffer.decisions == {(KEPT, reason.value): 2}

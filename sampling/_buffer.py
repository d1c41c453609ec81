"""The tail stage's bookkeeping: spans of undecided traces, decisions, and their counts.

Pure logic with the clock passed in: not thread-safe, no threads, no exporter. The
processor in `_tail` calls it under its one lock.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from enum import Enum

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from sampling._policy import SamplingPolicy
from sampling._sdk import raw_attributes, raw_events

KEPT = "kept"
"""Value of the `decision` label for kept traces."""
DROPPED = "dropped"
"""Value of the `decision` label for dropped traces."""


class Reason(Enum):
    """Why a trace was kept or dropped: the `reason` label of the decision counter."""

    ERROR = "error"
    """A span had ERROR status, a recorded exception, or an HTTP 5xx."""
    SLOW = "slow"
    """The local root lasted at least the slow threshold."""
    UPSTREAM = "upstream"
    """The parent was sampled by an upstream service."""
    BASELINE = "baseline"
    """The trace id fell in the consistent baseline share."""
    DEVELOPMENT = "development"
    """Development keeps everything."""
    OK = "ok"
    """Dropped: finished fast and without error, outside the baseline."""
    FORCED = "forced"
    """Dropped: a cap or a flush decided before the local root ended, and no rule kept it."""


class Cap(Enum):
    """What forced a decision before the trace's local root ended: the `cap` label."""

    BUFFER = "buffer"
    """`max_buffered_spans` was reached; the oldest traces were decided."""
    TRACE_SPANS = "trace_spans"
    """The trace reached `max_spans_per_trace`."""
    TRACE_AGE = "trace_age"
    """The trace reached `max_trace_age_ms`."""
    FLUSH = "flush"
    """`force_flush` or `shutdown` decided everything held."""


_HTTP_STATUS_KEYS = ("http.response.status_code", "http.status_code")
_HTTP_STATUS_KEY_SET = frozenset(_HTTP_STATUS_KEYS)
_ERROR = StatusCode.ERROR


def has_error(span: ReadableSpan) -> bool:
    """Whether `span` failed: ERROR status, an `exception` event, or an HTTP 5xx status."""
    if span.status.status_code is _ERROR:
        return True
    # This runs on every unsampled span. The public `events` and `attributes` copy the
    # SDK's containers on each call (under their locks), which would be most of the
    # sampler's cost; so the SDK's own deque and dict are read when they have the shape
    # this SDK gives them, and anything else takes the public path.
    # tests/sampling/test_errors.py pins both paths against real SDK spans.
    events = raw_events(span)
    if events is None:
        events = span.events
    if events and any(event.name == "exception" for event in events):
        return True
    attributes = raw_attributes(span)
    if attributes is None:
        attributes = span.attributes
    # One pass over the keys: looking up absent keys in the SDK's attribute mapping
    # raises and catches KeyError.
    if attributes and not _HTTP_STATUS_KEY_SET.isdisjoint(attributes):
        for key in _HTTP_STATUS_KEYS:
            code = attributes.get(key)
            if code is not None:
                if isinstance(code, str) and code.isdigit():
                    code = int(code)
                return isinstance(code, int) and code >= 500
    return False


class _Trace:
    """One undecided trace (in this process: one or more local roots and their children)."""

    __slots__ = (
        "created",
        "error",
        "grace",
        "open",
        "root_end",
        "root_start",
        "roots",
        "slowest",
        "spans",
    )

    def __init__(self, created: int) -> None:
        self.spans: list[ReadableSpan] = []
        self.open = 0
        self.created = created
        self.roots = 0
        """Local roots started and not yet ended (a process can run several of a trace)."""
        self.root_start = 0
        """Start of the earliest local root still open, or of the last one seen."""
        self.root_end = 0
        self.slowest = 0
        """Duration of the slowest local root that ended, in nanoseconds."""
        self.error = False
        self.grace = False


class TraceBuffer:
    """Holds the spans of undecided traces and decides them by `policy`.

    `release` receives the spans of each kept trace (and late spans of kept traces); it
    must not block. `clock` (monotonic nanoseconds) times graces and ages; `wall_clock`
    (nanoseconds since the epoch, like the SDK's span times) tells how long a root still
    open has run. Tests pass fixed clocks for both.
    """

    def __init__(
        self,
        policy: SamplingPolicy,
        release: Callable[[list[ReadableSpan]], None],
        clock: Callable[[], int] = time.monotonic_ns,
        divert: Callable[[int, bool, Reason, list[ReadableSpan]], bool] | None = None,
        *,
        wall_clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._policy = policy
        self._divert = divert
        """Offered each decided trace first; True when it took the spans (the relay)."""
        self._clock = clock
        self._wall_clock = wall_clock
        self._release = release
        self._slow_ns = int(policy.slow_threshold_ms * 1_000_000)
        self._grace_ns = int(policy.root_grace_ms * 1_000_000)
        self._age_ns = int(policy.max_trace_age_ms * 1_000_000)
        self._max_trace = policy.max_spans_per_trace
        self._max_buffered = policy.max_buffered_spans
        self._cache_size = policy.decision_cache_size
        self._traces: OrderedDict[int, _Trace] = OrderedDict()
        self._decided: OrderedDict[int, bool] = OrderedDict()
        # Every grace is equally long, so deadlines are appended in order.
        self._graces: deque[tuple[int, int]] = deque()
        self.buffered = 0
        """Spans held now."""
        self.decisions: dict[tuple[str, str], int] = {}
        """Traces decided, by (decision, reason)."""
        self.forced: dict[str, int] = {}
        """Decisions forced before the local root ended, by cap."""
        self.late: dict[str, int] = {}
        """Spans that ended after their trace was decided, by the decision they followed."""
        self.announce: list[tuple[int, bool, Reason]] | None = None
        """When a list, each decision is appended to it as `(trace_id, kept, reason)`."""

    def count(self, decision: str, reason: Reason) -> None:
        """Count one decided trace."""
        key = (decision, reason.value)
        self.decisions[key] = self.decisions.get(key, 0) + 1

    def started(self, trace_id: int, is_root: bool, start_time: int) -> None:
        """Note a span of an undecided (or new) trace as open."""
        trace = self._traces.get(trace_id)
        if trace is None:
            decided = self._decided.get(trace_id)
            # A new local root of a trace dropped earlier (a second task or call of the
            # same upstream trace) gets a decision of its own: it may fail where the first
            # did not. Spans of a kept trace keep following the decision.
            if decided or (decided is not None and not is_root):
                return
            if decided is not None:
                del self._decided[trace_id]
            trace = self._traces[trace_id] = _Trace(self._clock())
        trace.open += 1
        if is_root:
            if not trace.roots or start_time < trace.root_start:
                trace.root_start = start_time
            trace.roots += 1

    def ended(self, span: ReadableSpan, trace_id: int, is_root: bool, error: bool) -> bool:
        """Hold `span` or follow its trace's decision; True when a new grace needs a timer."""
        trace = self._traces.get(trace_id)
        if trace is None:
            keep = self._decided.get(trace_id)
            if keep is not None:
                decision = KEPT if keep else DROPPED
                self.late[decision] = self.late.get(decision, 0) + 1
                if keep:
                    self._release([span])
                return False
            # Started before this processor saw it (or its decision was forgotten).
            trace = self._traces[trace_id] = _Trace(self._clock())
            trace.open = 1
            trace.roots = 1 if is_root else 0
        trace.spans.append(span)
        trace.open -= 1
        self.buffered += 1
        if error:
            trace.error = True
        timer = False
        if is_root:
            trace.roots -= 1
            trace.root_end = span.end_time or 0
            trace.slowest = max(trace.slowest, trace.root_end - (span.start_time or 0))
        if trace.root_end and trace.roots <= 0:
            if trace.open <= 0:
                self._decide(trace_id, trace, None)
            elif not trace.grace:
                trace.grace = True
                timer = not self._graces
                self._graces.append((self._clock() + self._grace_ns, trace_id))
        elif len(trace.spans) >= self._max_trace:
            self._decide(trace_id, trace, Cap.TRACE_SPANS)
        while self.buffered > self._max_buffered:
            # The oldest trace that holds spans: deciding one that holds none (a request
            # still in flight) frees nothing and would drop its later error.
            oldest_id, oldest = next((i, t) for i, t in self._traces.items() if t.spans)
            self._decide(oldest_id, oldest, Cap.BUFFER)
        return timer

    def due(self) -> None:
        """Decide the traces whose grace or age has run out."""
        now = self._clock()
        graces = self._graces
        while graces and graces[0][0] <= now:
            trace_id = graces.popleft()[1]
            trace = self._traces.get(trace_id)
            if trace is not None and trace.grace:
                self._decide(trace_id, trace, None)
        oldest_allowed = now - self._age_ns
        while self._traces:
            trace_id, trace = next(iter(self._traces.items()))
            if trace.created > oldest_allowed:
                break
            self._decide(trace_id, trace, Cap.TRACE_AGE)

    def next_deadline(self) -> int | None:
        """The monotonic time of the next grace or age deadline, if any trace is held."""
        deadlines = []
        if self._graces:
            deadlines.append(self._graces[0][0])
        if self._traces:
            deadlines.append(next(iter(self._traces.values())).created + self._age_ns)
        return min(deadlines) if deadlines else None

    def decide_all(self) -> None:
        """Decide every held trace with what it has (flush, shutdown)."""
        while self._traces:
            trace_id, trace = next(iter(self._traces.items()))
            self._decide(trace_id, trace, Cap.FLUSH)

    def _decide(self, trace_id: int, trace: _Trace, cap: Cap | None) -> None:
        del self._traces[trace_id]
        self.buffered -= len(trace.spans)
        # Forced means decided before the local root ended; a root in its grace has.
        forced = False
        if cap is not None and (not trace.root_end or trace.roots > 0):
            forced = True
            self.forced[cap.value] = self.forced.get(cap.value, 0) + 1
        reason = self._keep_reason(trace)
        keep = reason is not None
        if reason is None:
            reason = Reason.FORCED if forced else Reason.OK
        self.count(KEPT if keep else DROPPED, reason)
        if self.announce is not None:
            self.announce.append((trace_id, keep, reason))
        decided = self._decided
        decided[trace_id] = keep
        if len(decided) > self._cache_size:
            decided.popitem(last=False)
        if self._divert is not None and self._divert(trace_id, keep, reason, trace.spans):
            return
        if keep:
            self._release(trace.spans)

    def _keep_reason(self, trace: _Trace) -> Reason | None:
        if trace.error:
            return Reason.ERROR
        if trace.root_end and trace.slowest >= self._slow_ns:
            return Reason.SLOW
        # A root still open has lasted at least until now (wall clock, as span times).
        if (
            trace.roots > 0
            and trace.root_start
            and self._wall_clock() - trace.root_start >= self._slow_ns
        ):
            return Reason.SLOW
        return None

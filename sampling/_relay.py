"""Keep a web request whose task failed: hold dropped traces that enqueued a task, and
signal upward when a task's trace is kept.

Each process decides its own part of a trace. `TraceRelay` sits behind the tail processor:

- a dropped trace that sent a message (a PRODUCER span, `apply_async/<task>`) is held for
  `hold_ms`, within `max_held_spans`, waiting for a keep signal;
- a trace kept for an error or slowness whose local root is a CONSUMER span with a remote
  parent (a Celery task) is parked until the next round, which signals "keep" upward and
  learns whether the upstream part was already dropped for good (then its consumer span
  gets `crm.sampling.upstream_released=true`).

One round per interval, in the relay's own thread, exchanges everything with a `channel`
(crm-otel's is Redis); the span path only touches dicts under the processor's lock.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation, get_meter_provider
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from sampling._buffer import Reason
from sampling._fork import register_at_fork
from semconv import metrics as semconv_metrics
from semconv.attributes import SAMPLING_UPSTREAM_RELEASED

_logger = logging.getLogger(__name__)

KEPT = "kept"
"""`outcome` of a held trace released by a keep signal."""
EXPIRED = "expired"
"""`outcome` of a held trace whose hold ran out: dropped for good."""
OVERFLOW = "overflow"
"""`outcome` of a held trace pushed out by `max_held_spans`: dropped for good."""

MAX_PENDING = 10_000
"""Trace ids waiting for the next round (signals, releases); more are not sent, counted
as relay errors."""


@dataclass
class Exchange:
    """What one round sends, trace ids as 32 hex digits."""

    signal: list[str] = field(default_factory=list)
    """Traces kept here whose upstream may be holding its part."""
    released: list[str] = field(default_factory=list)
    """Held traces this process drops for good (unless `Reply.kept` names them)."""
    unreleased: list[str] = field(default_factory=list)
    """Traces published as released earlier, then kept after all."""
    poll: bool = False
    """Whether to read the keep signals sent since the last round (something is held)."""


@dataclass
class Reply:
    """What one round learns."""

    kept: set[str] = field(default_factory=set)
    """Traces signalled kept since the last poll."""
    released: set[str] = field(default_factory=set)
    """Among `Exchange.signal`, those an upstream had already released."""


Channel = Callable[[Exchange], Reply]
"""Carries one round atomically: the signals and their released check in one step, the
releases and the poll in one step (so a signal and a release never cross unseen). Raises
`LookupError` when there is nowhere to exchange (the relay then turns itself off)."""


class _Held:
    __slots__ = ("deadline", "spans")

    def __init__(self, deadline: float, spans: list[ReadableSpan]) -> None:
        self.deadline = deadline
        self.spans = spans


class TraceRelay:
    """Holds, parks and signals as described in the module docstring.

    `divert` is given to the tail processor's buffer (called under its lock, never
    blocks); `bind` gives the relay the processor's export entry point.
    """

    def __init__(
        self,
        channel: Channel,
        *,
        hold_ms: float,
        max_held_spans: int,
        interval_ms: float = 500.0,
        meter_provider: MeterProvider | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not hold_ms > 0 or not interval_ms > 0:
            raise ValueError(
                f"hold_ms, interval_ms: expected numbers above 0, got {hold_ms!r}, {interval_ms!r}"
            )
        self._channel = channel
        self._hold_s = hold_ms / 1000
        self._max_held = max_held_spans
        self._interval_s = interval_ms / 1000
        self._clock = clock
        self._export: Callable[[list[ReadableSpan]], None] = lambda spans: None
        self._off = False
        self._failed_logged = False
        self._thread: threading.Thread | None = None
        self._reset()
        self._register_metrics(meter_provider or get_meter_provider())

    def _reset(self) -> None:
        """Fresh per-process state (at creation, and in a forked child)."""
        # Guards every field below; the channel and the exporter are called without it.
        self._lock = threading.Lock()
        # One round at a time (the thread, or a flush): the channel keeps a read position.
        self._round_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._held: OrderedDict[int, _Held] = OrderedDict()
        self.held_spans = 0
        self._parked: dict[int, list[ReadableSpan]] = {}
        self._ready: list[list[ReadableSpan]] = []
        self._released: list[str] = []
        self._unreleased: list[str] = []
        # Signals polled while their trace was still undecided here (request in flight).
        self._recent: OrderedDict[int, float] = OrderedDict()
        self.outcomes: dict[str, int] = dict.fromkeys((KEPT, EXPIRED, OVERFLOW), 0)
        self.upstream_released = 0
        self.errors = 0

    def bind(self, export: Callable[[list[ReadableSpan]], None]) -> None:
        """Start the relay's thread; kept spans go to `export` (it takes the processor's lock)."""
        self._export = export
        self._start()
        register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        # A child drops what its parent held: the parent exchanges for those itself.
        self._reset()
        self._start()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="CrmOtelTraceRelay", daemon=True)
        self._thread.start()

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stop the relay's thread (after the processor's last round); it holds nothing after."""
        self._turn_off()
        self._stopping.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    # --- called by the tail processor's buffer, under its lock ------------------------

    def divert(self, trace_id: int, keep: bool, reason: Reason, spans: list[ReadableSpan]) -> bool:
        """Take a decided trace's spans when the relay has a use for them (True)."""
        if self._off:
            return False
        if keep:
            if reason not in (Reason.ERROR, Reason.SLOW) or not any(map(_is_task_root, spans)):
                return False
            with self._lock:
                if len(self._parked) >= MAX_PENDING:
                    self.errors += 1
                    return False
                self._parked[trace_id] = spans
        else:
            if not any(span.kind is SpanKind.PRODUCER for span in spans):
                return False
            with self._lock:
                if self._recent.pop(trace_id, None) is not None:
                    # Its task failed before the request ended: keep it now.
                    self._ready.append(spans)
                    self.outcomes[KEPT] += 1
                else:
                    self._hold(trace_id, spans)
        self._wake.set()
        return True

    def _hold(self, trace_id: int, spans: list[ReadableSpan]) -> None:
        held = self._held.get(trace_id)
        if held is None:
            self._held[trace_id] = _Held(self._clock() + self._hold_s, spans)
        else:  # another local root of a trace already held (two requests of one trace)
            held.spans = held.spans + spans
        self.held_spans += len(spans)
        while self.held_spans > self._max_held:
            oldest_id, oldest = self._held.popitem(last=False)
            self.held_spans -= len(oldest.spans)
            self.outcomes[OVERFLOW] += 1
            if len(self._released) < MAX_PENDING:
                self._released.append(f"{oldest_id:032x}")

    # --- the relay's thread -----------------------------------------------------------

    def _run(self) -> None:
        pid = os.getpid()
        while os.getpid() == pid and not self._off:
            self._wake.wait()
            # One round per interval at most, whatever the traffic.
            if self._stopping.wait(self._interval_s) or os.getpid() != pid:
                return
            self._wake.clear()
            try:
                busy = self.run_round()
            except Exception:
                _logger.exception("The trace relay failed a round; later rounds go on")
                busy = True
            if busy:
                self._wake.set()

    def run_round(self) -> bool:
        """Exchange once with the channel, export what it kept; True while work remains."""
        with self._round_lock:
            return self._round()

    def _round(self) -> bool:
        now = self._clock()
        with self._lock:
            ready, self._ready = self._ready, []
            signal = list(self._parked)
            expiring: list[int] = []
            for trace_id, waiting in self._held.items():
                if waiting.deadline > now:
                    break
                expiring.append(trace_id)
            exchange = Exchange(
                signal=[f"{t:032x}" for t in signal],
                released=self._released + [f"{t:032x}" for t in expiring],
                unreleased=self._unreleased,
                poll=bool(self._held),
            )
            self._released, self._unreleased = [], []
        for spans in ready:
            self._export(spans)
        if not (exchange.signal or exchange.released or exchange.unreleased or exchange.poll):
            return False
        reply = self._exchange(exchange)
        out: list[ReadableSpan] = []
        with self._lock:
            for trace_id in signal:
                spans = self._parked.pop(trace_id, [])
                if f"{trace_id:032x}" in reply.released:
                    self.upstream_released += 1
                    spans = [_mark_released(s) if _is_task_root(s) else s for s in spans]
                out.extend(spans)
            expired = set(expiring)
            for hex_id in reply.kept:
                trace_id = int(hex_id, 16)
                held = self._held.pop(trace_id, None)
                if held is None:
                    self._remember(trace_id, now)
                    continue
                self.held_spans -= len(held.spans)
                self.outcomes[KEPT] += 1
                out.extend(held.spans)
                if trace_id in expired:
                    self._unreleased.append(hex_id)
            for trace_id in expiring:
                held = self._held.pop(trace_id, None)
                if held is not None:
                    self.held_spans -= len(held.spans)
                    self.outcomes[EXPIRED] += 1
            busy = bool(self._held or self._parked or self._ready or self._unreleased)
        if out:
            self._export(out)
        return busy

    def _exchange(self, exchange: Exchange) -> Reply:
        try:
            reply = self._channel(exchange)
        except LookupError as exc:
            _logger.warning("No Redis for keep signals (%s); tasks do not keep web requests", exc)
            self._turn_off()
            return Reply()
        except Exception as exc:
            with self._lock:
                self.errors += 1
            if not self._failed_logged:
                self._failed_logged = True
                _logger.warning("Exchanging keep signals failed (%s); counted, retried", exc)
            return Reply()
        self._failed_logged = False
        return reply

    def _remember(self, trace_id: int, now: float) -> None:
        recent = self._recent
        recent[trace_id] = now
        oldest = now - self._hold_s
        while recent and (len(recent) > MAX_PENDING or next(iter(recent.values())) < oldest):
            recent.popitem(last=False)

    def _turn_off(self) -> None:
        self._off = True
        with self._lock:
            self.outcomes[EXPIRED] += len(self._held)
            self._held.clear()
            self.held_spans = 0

    # --- self-metrics ------------------------------------------------------------------

    def _register_metrics(self, meter_provider: MeterProvider) -> None:
        meter = meter_provider.get_meter("sampling")
        m = semconv_metrics
        m.SAMPLING_HELD_TRACES.create(meter, [_weak(self, TraceRelay._observe_outcomes)])
        m.SAMPLING_SPANS_HELD.create(meter, [_weak(self, TraceRelay._observe_held)])
        m.SAMPLING_UPSTREAM_RELEASED.create(meter, [_weak(self, TraceRelay._observe_released)])
        m.SAMPLING_RELAY_ERRORS.create(meter, [_weak(self, TraceRelay._observe_errors)])

    def _observe_outcomes(self) -> list[Observation]:
        with self._lock:
            totals = list(self.outcomes.items())
        return [Observation(n, {"outcome": o}) for o, n in totals]

    def _observe_held(self) -> list[Observation]:
        return [Observation(self.held_spans)]

    def _observe_released(self) -> list[Observation]:
        return [Observation(self.upstream_released)]

    def _observe_errors(self) -> list[Observation]:
        return [Observation(self.errors)]


def _is_task_root(span: ReadableSpan) -> bool:
    parent = span.parent
    return span.kind is SpanKind.CONSUMER and parent is not None and parent.is_remote


def _mark_released(span: ReadableSpan) -> ReadableSpan:
    """A copy of an ended span with the released attribute (ended spans are read-only)."""
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes={**(span.attributes or {}), SAMPLING_UPSTREAM_RELEASED: True},
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def _weak(
    relay: TraceRelay, method: Callable[[TraceRelay], list[Observation]]
) -> Callable[[CallbackOptions], Iterable[Observation]]:
    ref = weakref.ref(relay)

    def callback(options: CallbackOptions) -> Iterable[Observation]:
        target = ref()
        return method(target) if target is not None else ()

    return callback

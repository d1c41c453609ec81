"""The tail stage: a span processor that decides whole traces, then exports the kept ones."""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable

from opentelemetry.context import Context, attach, detach, set_value
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation, get_meter_provider
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter

from sampling._buffer import KEPT, Reason, TraceBuffer, has_error
from sampling._fork import register_at_fork
from sampling._policy import SamplingPolicy
from sampling._relay import TraceRelay
from sampling._sdk import SUPPRESS_INSTRUMENTATION_KEY
from semconv import metrics as semconv_metrics

_logger = logging.getLogger(__name__)

QUEUE_FULL = "queue_full"
"""The `reason` label of spans dropped because the export queue was full."""

DecisionListener = Callable[[int, bool, Reason], None]
"""Called with `(trace_id, kept, reason)` once per local trace decided in this process."""


class TailSamplingProcessor(SpanProcessor):
    """Holds the spans of each trace until its fate is known, then exports kept traces whole.

    Spans the head stage sampled (baseline, upstream, development) go straight to the
    export queue. The others are held per trace and decided when the local root and its
    open children have ended (or the root's grace ran out), or when a cap forces it: kept
    on an error, a slow local root, otherwise dropped. Spans ending after their trace
    was decided follow the decision. Unlike the SDK's `BatchSpanProcessor`, the export
    queue takes spans whatever their sampled flag, since kept traces are mostly unsampled.

    `on_decision`, when given, hears every decision (head-kept local roots included),
    outside the lock, on the thread that decided; it must be quick and not block.
    """

    def __init__(
        self,
        exporter: SpanExporter,
        policy: SamplingPolicy | None = None,
        *,
        meter_provider: MeterProvider | None = None,
        schedule_delay_millis: float = 5000.0,
        max_export_batch_size: int = 512,
        relay: TraceRelay | None = None,
        on_decision: DecisionListener | None = None,
    ) -> None:
        if not schedule_delay_millis > 0:
            raise ValueError(
                f"schedule_delay_millis: expected a number above 0, got {schedule_delay_millis!r}"
            )
        if isinstance(max_export_batch_size, bool) or max_export_batch_size < 1:
            raise ValueError(
                f"max_export_batch_size: expected a whole number of at least 1, "
                f"got {max_export_batch_size!r}"
            )
        self._exporter = exporter
        self._policy = policy = policy or SamplingPolicy()
        self._keep_all = policy.keep_all
        self._keep_errors = policy.keep_errors
        self._queue_size = policy.export_queue_size
        self._batch_size = max_export_batch_size
        self._delay = schedule_delay_millis / 1000
        self._shutdown = False
        self._failed = False
        self._relay = relay
        self._on_decision = on_decision
        self._start()
        if relay is not None:
            relay.bind(self._export_relayed)
        register_at_fork(after_in_child=self._start)
        self._register_metrics(meter_provider or get_meter_provider())

    def _start(self) -> None:
        """Fresh per-process state and worker thread (at creation, and in a forked child).

        A child drops what its parent held: the parent decides and exports those itself.
        """
        self._pid = os.getpid()
        # One lock guards the buffer, the decision cache, the counts and appends to the
        # queue; nothing is called out (exporter, logging, metrics) while holding it.
        self._lock = threading.Lock()
        # Serialises exporter calls between the worker and force_flush/shutdown only.
        self._export_lock = threading.Lock()
        self._wake = threading.Event()
        self._queue: deque[ReadableSpan] = deque()
        self._dropped: dict[str, int] = {}
        relay = self._relay
        self._buffer = TraceBuffer(
            self._policy, self._enqueue, divert=relay.divert if relay is not None else None
        )
        self._buffer.announce = [] if self._on_decision is not None else None
        self._worker = threading.Thread(target=self._work, name="CrmOtelTailSampler", daemon=True)
        self._worker.start()

    # --- the span path: runs on every span, keep it cheap ---------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Count the span as open in its trace, unless the head stage already kept it."""
        context = span.context
        # `& 1` is the sampled flag; the property costs a call on every span.
        if self._keep_all or context is None or context.trace_flags & 1 or self._shutdown:
            return
        parent = span.parent
        is_root = parent is None or parent.is_remote
        try:  # free in 3.11 unless raised; a sampler bug must never fail the request
            with self._lock:
                self._buffer.started(context.trace_id, is_root, span.start_time or 0)
        except Exception:
            self._report_failure()

    def on_end(self, span: ReadableSpan) -> None:
        """Export, hold, or follow the trace's decision."""
        context = span.context
        if context is None or self._shutdown:
            return
        parent = span.parent
        is_root = parent is None or parent.is_remote
        try:  # free in 3.11 unless raised; a sampler bug must never fail the request
            if is_root and self._pid != os.getpid():
                # Forked without the at-fork hooks (a C-level fork): start over here.
                self._start()
            announced = None
            if self._keep_all or context.trace_flags & 1:
                with self._lock:
                    self._enqueue([span])
                    if is_root:
                        reason = self._head_reason(span)
                        self._buffer.count(KEPT, reason)
                        if self._on_decision is not None:
                            announced = [(context.trace_id, True, reason)]
                    wake = len(self._queue) >= self._batch_size
            else:
                error = self._keep_errors and has_error(span)
                with self._lock:
                    wake = self._buffer.ended(span, context.trace_id, is_root, error)
                    wake = wake or len(self._queue) >= self._batch_size
                    announced = self._take_announced()
            if wake and not self._wake.is_set():
                self._wake.set()
            if announced:
                self._announce(announced)
        except Exception:
            self._report_failure()

    def _take_announced(self) -> list[tuple[int, bool, Reason]] | None:
        """The decisions made since the last call (caller holds the lock)."""
        announced = self._buffer.announce
        if not announced:
            return None
        self._buffer.announce = []
        return announced

    def _announce(self, decisions: list[tuple[int, bool, Reason]]) -> None:
        """Tell the listener (never under the lock); its failure must not fail the span."""
        listener = self._on_decision
        if listener is not None:
            for trace_id, kept, reason in decisions:
                try:
                    listener(trace_id, kept, reason)
                except Exception:
                    self._report_failure()

    def _report_failure(self) -> None:
        if not self._failed:
            self._failed = True
            _logger.exception("The tail sampler failed on a span; later failures are not logged")

    def _head_reason(self, root: ReadableSpan) -> Reason:
        if self._keep_all:
            return Reason.DEVELOPMENT
        parent = root.parent
        if parent is not None and parent.trace_flags & 1:
            return Reason.UPSTREAM
        return Reason.BASELINE

    def _enqueue(self, spans: list[ReadableSpan]) -> None:
        """Queue kept spans for export (caller holds the lock); count what does not fit."""
        room = self._queue_size - len(self._queue)
        if len(spans) > room:
            room = max(room, 0)
            self._dropped[QUEUE_FULL] = self._dropped.get(QUEUE_FULL, 0) + len(spans) - room
            spans = spans[:room]
        self._queue.extend(spans)

    def _export_relayed(self, spans: list[ReadableSpan]) -> None:
        """Queue spans the relay kept (a held trace signalled, a parked one signalled)."""
        with self._lock:
            self._enqueue(spans)
            wake = len(self._queue) >= self._batch_size
        if wake:
            self._wake.set()

    # --- the worker: timed decisions and batched export -----------------------------

    def _work(self) -> None:
        next_export = time.monotonic() + self._delay
        while not self._shutdown:
            self._wake.clear()
            with self._lock:
                deadline = self._buffer.next_deadline()
            now = time.monotonic()
            timeout = next_export - now
            if deadline is not None:
                timeout = min(timeout, deadline / 1e9 - now)
            if timeout > 0:
                self._wake.wait(timeout)
            if self._shutdown:
                break
            try:  # the worker must outlive any one bad round
                with self._lock:
                    self._buffer.due()
                    announced = self._take_announced()
                if announced:
                    self._announce(announced)
                now = time.monotonic()
                if now >= next_export:
                    self._export(everything=True)
                    next_export = now + self._delay
                elif len(self._queue) >= self._batch_size:
                    self._export(everything=False)
            except Exception:
                self._report_failure()

    def _export(self, *, everything: bool) -> None:
        queue = self._queue
        with self._export_lock:
            while queue and (everything or len(queue) >= self._batch_size):
                batch: list[ReadableSpan] = []
                while queue and len(batch) < self._batch_size:
                    batch.append(queue.popleft())
                # The exporter's own HTTP calls must not be traced.
                token = attach(set_value(SUPPRESS_INSTRUMENTATION_KEY, True))
                try:
                    self._exporter.export(batch)
                except Exception:
                    _logger.exception("Exporting %d kept spans failed", len(batch))
                finally:
                    detach(token)

    # --- flush and shutdown ----------------------------------------------------------

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Decide every held trace with what it has, export the kept spans, flush the exporter."""
        if self._shutdown:
            return False
        with self._lock:
            self._buffer.decide_all()
            announced = self._take_announced()
        if announced:
            self._announce(announced)
        if self._relay is not None:  # parked task traces signal before the process exits
            self._relay.run_round()
        self._export(everything=True)
        return self._exporter.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Decide and export everything held, stop the worker, shut the exporter down."""
        if self._shutdown:
            return
        with self._lock:
            self._buffer.decide_all()
            announced = self._take_announced()
        if announced:
            self._announce(announced)
        if self._relay is not None:
            self._relay.run_round()
            self._relay.shutdown()
        self._shutdown = True
        self._wake.set()
        if self._worker is not threading.current_thread():
            self._worker.join(timeout=5)
        self._export(everything=True)
        self._exporter.shutdown()

    # --- self-metrics ----------------------------------------------------------------

    def _register_metrics(self, meter_provider: MeterProvider) -> None:
        meter = meter_provider.get_meter("sampling")
        # Callbacks hold the processor weakly: the meter provider must not keep it alive.
        m = semconv_metrics
        m.SAMPLING_TRACES.create(meter, [_weak(self, TailSamplingProcessor._observe_traces)])
        m.SAMPLING_SPANS_BUFFERED.create(
            meter, [_weak(self, TailSamplingProcessor._observe_buffered)]
        )
        m.SAMPLING_FORCED_DECISIONS.create(
            meter, [_weak(self, TailSamplingProcessor._observe_forced)]
        )
        m.SAMPLING_LATE_SPANS.create(meter, [_weak(self, TailSamplingProcessor._observe_late)])
        m.SAMPLING_SPANS_DROPPED.create(
            meter, [_weak(self, TailSamplingProcessor._observe_dropped)]
        )

    def _observe_traces(self) -> list[Observation]:
        with self._lock:
            totals = list(self._buffer.decisions.items())
        return [Observation(n, {"decision": d, "reason": r}) for (d, r), n in totals]

    def _observe_buffered(self) -> list[Observation]:
        return [Observation(self._buffer.buffered)]

    def _observe_forced(self) -> list[Observation]:
        with self._lock:
            totals = list(self._buffer.forced.items())
        return [Observation(n, {"cap": cap}) for cap, n in totals]

    def _observe_late(self) -> list[Observation]:
        with self._lock:
            totals = list(self._buffer.late.items())
        return [Observation(n, {"decision": d}) for d, n in totals]

    def _observe_dropped(self) -> list[Observation]:
        with self._lock:
            totals = list(self._dropped.items())
        return [Observation(n, {"reason": r}) for r, n in totals]


def _weak(
    processor: TailSamplingProcessor,
    method: Callable[[TailSamplingProcessor], list[Observation]],
) -> Callable[[CallbackOptions], Iterable[Observation]]:
    ref = weakref.ref(processor)

    def callback(options: CallbackOptions) -> Iterable[Observation]:
        target = ref()
        return method(target) if target is not None else ()

    return callback

"""The head stage: record every span, and mark the consistent baseline share as sampled."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, TraceState, get_current_span
from opentelemetry.util.types import Attributes

from sampling._policy import SamplingPolicy
from sampling._threshold import (
    MAX_THRESHOLD,
    RANDOMNESS_MASK,
    encode_threshold,
    randomness,
    threshold_for,
    with_threshold,
)

_SAMPLE = Decision.RECORD_AND_SAMPLE
_RECORD = Decision.RECORD_ONLY


class ConsistentBaselineSampler(Sampler):
    """Records every span; sets the sampled flag on the baseline share, chosen by OTEP 235.

    Spans outside the baseline are still recorded (`RECORD_ONLY`) so the tail stage can
    keep the traces that fail or run slow. A parent sampled upstream (remote or local) is
    honoured; a span with a local parent follows its parent's decision; a remote parent
    that was not sampled gets this sampler's own consistent decision. Sampled root spans
    carry `ot=th:<threshold>` in their tracestate, so services downstream (crm-otel or a
    plain `ParentBased` sampler) keep exactly the same baseline traces.
    """

    def __init__(self, ratio: float, *, keep_all: bool = False) -> None:
        self._ratio = 1.0 if keep_all else ratio
        self._keep_all = keep_all
        self._threshold = threshold_for(self._ratio)
        self._th = encode_threshold(self._threshold) if self._threshold < MAX_THRESHOLD else None
        # Root spans carry no parent tracestate, so the sampled one is built once.
        self._root_state = with_threshold(None, self._th)

    @classmethod
    def from_policy(cls, policy: SamplingPolicy) -> ConsistentBaselineSampler:
        """The head sampler for `policy` (development samples everything)."""
        return cls(policy.ratio, keep_all=policy.keep_all)

    @property
    def threshold(self) -> int:
        """The OTEP 235 rejection threshold (2**56 when nothing is sampled)."""
        return self._threshold

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        """Sampled for the baseline or an upstream-sampled parent; recorded otherwise."""
        parent = get_current_span(parent_context).get_span_context()
        if not parent.is_valid:
            if (trace_id & RANDOMNESS_MASK) >= self._threshold:
                return SamplingResult(_SAMPLE, attributes, self._root_state)
            return SamplingResult(_RECORD, attributes, None)
        state = parent.trace_state
        if parent.trace_flags.sampled:
            return SamplingResult(_SAMPLE, attributes, state)
        if not parent.is_remote:
            return SamplingResult(_RECORD, attributes, state)
        if randomness(trace_id, state) >= self._threshold:
            return SamplingResult(_SAMPLE, attributes, with_threshold(state, self._th))
        return SamplingResult(_RECORD, attributes, with_threshold(state, None))

    def get_description(self) -> str:
        """Name and ratio, as the SDK's samplers describe themselves."""
        return f"ConsistentBaselineSampler{{{self._ratio}}}"

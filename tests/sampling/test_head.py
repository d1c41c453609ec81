"""The head stage: every span recorded, the baseline share sampled consistently."""

from __future__ import annotations

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from sampling import ConsistentBaselineSampler, SamplingPolicy
from tests.sampling.conftest import BASELINE_RANDOMNESS, OUTSIDE_BASELINE_RANDOMNESS

SAMPLED = TraceFlags(TraceFlags.SAMPLED)
UNSAMPLED = TraceFlags(TraceFlags.DEFAULT)


def parent(
    trace_id: int, flags: TraceFlags, remote: bool, state: TraceState | None = None
) -> Context:
    """A context whose current span is a parent with these properties."""
    span_context = SpanContext(
        trace_id, 0xA1, is_remote=remote, trace_flags=flags, trace_state=state
    )
    return set_span_in_context(NonRecordingSpan(span_context))


def test_root_outside_the_baseline_is_recorded_not_sampled() -> None:
    """A root outside the baseline is RECORD_ONLY, so the tail stage still sees it."""
    result = ConsistentBaselineSampler(0.1).should_sample(None, OUTSIDE_BASELINE_RANDOMNESS, "GET")
    assert result.decision is Decision.RECORD_ONLY
    assert not result.trace_state


def test_baseline_root_is_sampled_with_its_threshold() -> None:
    """A baseline root is sampled and carries `ot=th:<threshold>` in its tracestate."""
    result = ConsistentBaselineSampler(0.1).should_sample(None, BASELINE_RANDOMNESS, "GET")
    assert result.decision is Decision.RECORD_AND_SAMPLE
    assert result.trace_state is not None
    assert result.trace_state.get("ot") == "th:e6666666666666"


def test_span_attributes_are_passed_through() -> None:
    """The span's own attributes survive sampling."""
    result = ConsistentBaselineSampler(0.1).should_sample(None, 1, "GET", attributes={"a": 1})
    assert dict(result.attributes) == {"a": 1}


def test_upstream_sampled_remote_parent_is_honoured() -> None:
    """A remote parent sampled upstream is followed, even outside this ratio's baseline."""
    state = TraceState([("ot", "th:fd")])
    context = parent(OUTSIDE_BASELINE_RANDOMNESS, SAMPLED, remote=True, state=state)
    result = ConsistentBaselineSampler(0.1).should_sample(context, OUTSIDE_BASELINE_RANDOMNESS, "x")
    assert result.decision is Decision.RECORD_AND_SAMPLE
    assert result.trace_state is state


def test_child_follows_its_local_parent() -> None:
    """A span with a local parent takes the parent's decision, sampled or not."""
    sampler = ConsistentBaselineSampler(0.1)
    trace_id = BASELINE_RANDOMNESS  # would be baseline as a root
    unsampled = sampler.should_sample(parent(trace_id, UNSAMPLED, remote=False), trace_id, "x")
    sampled = sampler.should_sample(parent(1, SAMPLED, remote=False), 1, "x")
    assert unsampled.decision is Decision.RECORD_ONLY
    assert sampled.decision is Decision.RECORD_AND_SAMPLE


def test_unsampled_remote_parent_gets_a_consistent_decision() -> None:
    """Under an unsampled remote parent the decision uses `rv` when given, and writes `th`."""
    sampler = ConsistentBaselineSampler(0.5)
    high_rv = TraceState([("ot", "rv:ffffffffffffff")])
    low_rv = TraceState([("ot", "th:0;rv:00000000000000")])
    kept = sampler.should_sample(parent(1, UNSAMPLED, True, high_rv), 1, "x")
    recorded = sampler.should_sample(parent(1, UNSAMPLED, True, low_rv), 1, "x")
    assert kept.decision is Decision.RECORD_AND_SAMPLE
    assert kept.trace_state is not None
    assert kept.trace_state.get("ot") == "th:8;rv:ffffffffffffff"
    assert recorded.decision is Decision.RECORD_ONLY
    assert recorded.trace_state is not None
    assert recorded.trace_state.get("ot") == "rv:00000000000000"


def test_development_samples_everything() -> None:
    """The development policy samples every root with `th:0`."""
    sampler = ConsistentBaselineSampler.from_policy(SamplingPolicy.development())
    result = sampler.should_sample(None, OUTSIDE_BASELINE_RANDOMNESS, "GET")
    assert result.decision is Decision.RECORD_AND_SAMPLE
    assert result.trace_state is not None
    assert result.trace_state.get("ot") == "th:0"


def test_ratio_zero_samples_no_root() -> None:
    """With ratio 0 no root is sampled, whatever its randomness."""
    result = ConsistentBaselineSampler(0.0).should_sample(None, BASELINE_RANDOMNESS, "GET")
    assert result.decision is Decision.RECORD_ONLY


def test_description_names_the_ratio() -> None:
    """The description names the sampler and its ratio, as the SDK's samplers do."""
    assert ConsistentBaselineSampler(0.1).get_description() == "ConsistentBaselineSampler{0.1}"

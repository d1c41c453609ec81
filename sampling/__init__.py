"""Tail-style sampling for OpenTelemetry traces.

`ConsistentBaselineSampler` (the head stage) records every span and marks a consistent
baseline share as sampled; `TailSamplingProcessor` (the tail stage) holds each trace's
spans until its fate is known and exports kept traces whole, by a `SamplingPolicy`;
`TraceRelay` lets a task's kept decision keep the dropped web part that enqueued it.
"""

from sampling._buffer import Cap, Reason, has_error
from sampling._head import ConsistentBaselineSampler
from sampling._policy import SamplingPolicy
from sampling._relay import Exchange, Reply, TraceRelay
from sampling._tail import TailSamplingProcessor
from sampling._threshold import encode_threshold, randomness, threshold_for

__all__ = [
    "Cap",
    "ConsistentBaselineSampler",
    "Exchange",
    "Reason",
    "Reply",
    "SamplingPolicy",
    "TailSamplingProcessor",
    "TraceRelay",
    "encode_threshold",
    "has_error",
    "randomness",
    "threshold_for",
]

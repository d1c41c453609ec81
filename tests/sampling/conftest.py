"""Pipelines of head sampler + tail processor over in-memory exporters, with seeded ids."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, Tracer, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator

from sampling import ConsistentBaselineSampler, SamplingPolicy, TailSamplingProcessor
from sampling._threshold import RANDOMNESS_MASK

BASELINE_RANDOMNESS = RANDOMNESS_MASK
"""Randomness in every baseline share above 0."""
OUTSIDE_BASELINE_RANDOMNESS = 1
"""Randomness outside every baseline share below 1."""


def trace_id_with(randomness: int, serial: int) -> int:
    """A valid trace id whose 56 low bits are `randomness` and whose high bits are `serial`."""
    return ((serial + 1) << 64) | randomness


class SeededIds(IdGenerator):
    """Reproducible random ids; `next_trace_ids` are used first when set."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)
        self.next_trace_ids: list[int] = []

    def generate_span_id(self) -> int:
        return self._random.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        if self.next_trace_ids:
            return self.next_trace_ids.pop(0)
        return self._random.getrandbits(128) or 1


@dataclass
class Pipeline:
    """One service: tracer, head sampler, tail processor, in-memory exporter and metrics."""

    provider: TracerProvider
    tracer: Tracer
    processor: TailSamplingProcessor
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    ids: SeededIds

    def exported(self) -> list[ReadableSpan]:
        """Spans the exporter received so far."""
        return list(self.exporter.get_finished_spans())

    def exported_trace_ids(self) -> set[int]:
        """Trace ids with at least one exported span."""
        return {span.context.trace_id for span in self.exported() if span.context}

    def flush(self) -> None:
        """Decide whatever is held and export everything queued."""
        assert self.processor.force_flush()

    def metric(self, name: str) -> dict[tuple[tuple[str, object], ...], int | float]:
        """Current value of each series of `name`, keyed by sorted label pairs."""
        values: dict[tuple[tuple[str, object], ...], int | float] = {}
        data = self.reader.get_metrics_data()
        if data is None:
            return values
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name != name:
                        continue
                    for point in metric.data.data_points:  # type: ignore[union-attr]
                        key = tuple(sorted((point.attributes or {}).items()))
                        values[key] = point.value  # type: ignore[union-attr]
        return values


PipelineFactory = Callable[..., Pipeline]


@pytest.fixture
def make_pipeline() -> Iterator[PipelineFactory]:
    """Builds pipelines (shut down after the test); keyword arguments go to the policy.

    The ratio defaults to 0 so random ids never land in the baseline by chance; tests
    about the baseline set it.
    """
    created: list[Pipeline] = []

    def make(
        seed: int = 7, schedule_delay_millis: float = 10.0, **policy_fields: object
    ) -> Pipeline:
        fields: dict[str, object] = {"ratio": 0.0, "root_grace_ms": 1000.0}
        fields.update(policy_fields)
        policy = SamplingPolicy(**fields)  # type: ignore[arg-type]
        reader = InMemoryMetricReader()
        exporter = InMemorySpanExporter()
        processor = TailSamplingProcessor(
            exporter,
            policy,
            meter_provider=MeterProvider(metric_readers=[reader]),
            schedule_delay_millis=schedule_delay_millis,
        )
        ids = SeededIds(seed)
        provider = TracerProvider(
            sampler=ConsistentBaselineSampler.from_policy(policy),
            id_generator=ids,
            shutdown_on_exit=False,
        )
        provider.add_span_processor(processor)
        pipeline = Pipeline(provider, provider.get_tracer("test"), processor, exporter, reader, ids)
        created.append(pipeline)
        return pipeline

    yield make
    for pipeline in created:
        pipeline.provider.shutdown()


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll `predicate` until it holds or `timeout` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()

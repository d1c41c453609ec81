"""The SDK side: Views with millisecond and second buckets, instruments, bounded labels."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

from crm_otel.metrics._exemplars import ExemplarHistogram
from semconv import metrics as semconv_metrics
from semconv._definition import InstrumentKind, MetricDefinition

MS_BUCKETS: tuple[float, ...] = (
    5,
    10,
    25,
    50,
    75,
    100,
    250,
    500,
    750,
    1000,
    2500,
    5000,
    7500,
    10000,
)
"""Histogram bounds of the millisecond latencies (the SDK's defaults stop being useful
under 5 ms and above 1 s)."""

SECONDS_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
    300,
    600,
    1800,
    3600,
)
"""Histogram bounds of Celery task and WebSocket connection durations, in seconds."""


def buckets_for(definition: MetricDefinition) -> tuple[float, ...]:
    """The bucket bounds of a histogram definition, by its unit."""
    return SECONDS_BUCKETS if definition.unit == "s" else MS_BUCKETS


def views() -> list[View]:
    """One View per catalogue histogram, setting its buckets (OTLP consumers get them too)."""
    return [
        View(
            instrument_name=d.name,
            aggregation=ExplicitBucketHistogramAggregation(boundaries=buckets_for(d)),
        )
        for d in semconv_metrics.CATALOGUE
        if d.kind is InstrumentKind.HISTOGRAM
    ]


class BoundedLabel:
    """Keeps at most `cap` distinct values of one open-ended label; later ones are `other`.

    Each value turned away is counted on `crm_otel_metrics_label_overflow_total{label}`.
    """

    def __init__(self, label: str, cap: int, overflow: Any) -> None:
        self._label = label
        self._cap = cap
        self._overflow = overflow
        self._seen: set[str] = set()
        # Bookkeeping only under the lock; the overflow counter is called after it.
        self._lock = threading.Lock()

    def __call__(self, value: object) -> str:
        text = str(value)[:200]
        if text in self._seen:
            return text
        with self._lock:
            if text in self._seen or len(self._seen) < self._cap:
                self._seen.add(text)
                return text
        self._overflow.add(1, {"label": self._label})
        return semconv_metrics.OTHER


@dataclass
class Instruments:
    """Every synchronous instrument of the catalogue, and the bounded labels."""

    http_requests: Any
    http_request_duration: Any
    http_errors: Any
    workflow_runs: Any
    workflow_duration: Any
    workflow_action_failures: Any
    search_latency: Any
    search_results: Any
    search_cache_lookups: Any
    websocket_active: Any
    websocket_messages: Any
    websocket_duration: Any
    lead_score_duration: Any
    lead_score_cache_lookups: Any
    lead_score_recalculations: Any
    db_connections: Any
    db_query_duration: Any
    db_errors: Any
    db_pool_exhausted: Any
    cache_operations: Any
    celery_tasks: Any
    celery_task_duration: Any
    label_overflow: Any
    workflow_label: BoundedLabel
    action_type_label: BoundedLabel
    search_type_label: BoundedLabel
    task_label: BoundedLabel

    @classmethod
    def create(cls, meter: Any, label_cap: int, exemplars: Any = None) -> Instruments:
        """Create the instruments on `meter` from their catalogue definitions; the latency
        histograms offer their measurements to `exemplars` (an `ExemplarStore`) when given."""
        m = semconv_metrics

        def traced(definition: MetricDefinition) -> ExemplarHistogram:
            histogram = definition.create(meter)
            bounds = buckets_for(definition)
            return ExemplarHistogram(histogram, definition.prometheus_name, bounds, exemplars)

        overflow = m.METRICS_LABEL_OVERFLOW.create(meter)
        return cls(
            http_requests=m.HTTP_REQUESTS.create(meter),
            http_request_duration=traced(m.HTTP_REQUEST_DURATION),
            http_errors=m.HTTP_ERRORS.create(meter),
            workflow_runs=m.WORKFLOW_RUNS.create(meter),
            workflow_duration=traced(m.WORKFLOW_DURATION),
            workflow_action_failures=m.WORKFLOW_ACTION_FAILURES.create(meter),
            search_latency=m.SEARCH_QUERY_LATENCY.create(meter),
            search_results=m.SEARCH_RESULTS.create(meter),
            search_cache_lookups=m.SEARCH_CACHE_LOOKUPS.create(meter),
            websocket_active=m.WEBSOCKET_ACTIVE_CONNECTIONS.create(meter),
            websocket_messages=m.WEBSOCKET_MESSAGES_SENT.create(meter),
            websocket_duration=m.WEBSOCKET_CONNECTION_DURATION.create(meter),
            lead_score_duration=m.LEAD_SCORE_CALCULATION_DURATION.create(meter),
            lead_score_cache_lookups=m.LEAD_SCORE_CACHE_LOOKUPS.create(meter),
            lead_score_recalculations=m.LEAD_SCORE_RECALCULATIONS.create(meter),
            db_connections=m.DB_CONNECTIONS_ACTIVE.create(meter),
            db_query_duration=traced(m.DB_QUERY_DURATION),
            db_errors=m.DB_ERRORS.create(meter),
            db_pool_exhausted=m.DB_POOL_EXHAUSTED.create(meter),
            cache_operations=m.CACHE_OPERATIONS.create(meter),
            celery_tasks=m.CELERY_TASKS.create(meter),
            celery_task_duration=traced(m.CELERY_TASK_DURATION),
            label_overflow=overflow,
            workflow_label=BoundedLabel("workflow", label_cap, overflow),
            action_type_label=BoundedLabel("action_type", label_cap, overflow),
            search_type_label=BoundedLabel("type", label_cap, overflow),
            task_label=BoundedLabel("task", label_cap, overflow),
        )

"""The trace pipeline's seam: the sampler and the processor in front of each exporter."""

from __future__ import annotations

import logging
from collections.abc import Callable

from opentelemetry.metrics import get_meter_provider
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import Sampler

from crm_otel._export_health import ReportingSpanExporter
from crm_otel._log import internal_logger
from crm_otel._settings import Settings
from sampling import ConsistentBaselineSampler, Reason, TailSamplingProcessor, TraceRelay

DecisionListener = Callable[[int, bool, Reason], None]
"""Hears a tail decision: trace id, kept, reason."""


def _unchanged(exporter: SpanExporter) -> SpanExporter:
    return exporter


def _no_listener() -> DecisionListener | None:
    return None


def span_pipeline(
    settings: Settings,
    *,
    wrap_exporter: Callable[[SpanExporter], SpanExporter] = _unchanged,
    decision_listener: Callable[[], DecisionListener | None] = _no_listener,
) -> tuple[Sampler | None, Callable[[SpanExporter], SpanProcessor]]:
    """The head sampler and the export-processor factory the configurator installs.

    Every span is recorded; the head sampler marks the consistent baseline share, and
    each exporter sits behind a tail processor that keeps whole traces by the policy.
    Its self-metrics go to the global meter provider, which `setup_metrics` installed.
    `OTEL_BSP_SCHEDULE_DELAY` and `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` keep their SDK meaning
    for the tail processor's export queue. `wrap_exporter` goes around each exporter
    (redacted copies, then the metrics' count of kept spans by org); `decision_listener()`
    gives what hears each tail processor's decisions (the metrics' exemplars), asked as the
    processor is built.
    """
    _route_sampling_logs()
    policy = settings.sampling
    schedule_delay = settings.schedule_delay_ms
    batch_size = settings.export_batch_size
    sampler = ConsistentBaselineSampler.from_policy(policy)
    if not settings.tail_sampling:
        # Spans are still all recorded (metrics from spans stay unbiased); the SDK's
        # processor exports the sampled baseline only.
        def batch_processor(exporter: SpanExporter) -> SpanProcessor:
            return BatchSpanProcessor(
                wrap_exporter(ReportingSpanExporter(exporter)),
                schedule_delay_millis=schedule_delay,
                max_export_batch_size=batch_size,
            )

        return sampler, batch_processor

    def export_processor(exporter: SpanExporter) -> SpanProcessor:
        # Exemplars name only traces this processor keeps: it tells them its decisions.
        return TailSamplingProcessor(
            wrap_exporter(ReportingSpanExporter(exporter)),
            policy,
            meter_provider=get_meter_provider(),
            schedule_delay_millis=schedule_delay,
            max_export_batch_size=batch_size,
            relay=_relay(settings),
            on_decision=decision_listener(),
        )

    return sampler, export_processor


def _relay(settings: Settings) -> TraceRelay | None:
    """The keep-signal relay over the CRM's Redis, unless holding is off or pointless."""
    policy = settings.sampling
    if policy.keep_all or not policy.hold_ms:
        return None
    from crm_otel._relay import RedisChannel

    return TraceRelay(
        RedisChannel(settings.relay_redis_url, policy.hold_ms),
        hold_ms=policy.hold_ms,
        max_held_spans=policy.max_held_spans,
        meter_provider=get_meter_provider(),
    )


def _route_sampling_logs() -> None:
    # The sampler's own records (a failed export) go where crm-otel's do, never into
    # the handlers crm-otel installs on the root logger (no feedback loops).
    sampling_logger = logging.getLogger("sampling")
    sampling_logger.propagate = False
    for handler in internal_logger.handlers:
        if handler not in sampling_logger.handlers:
            sampling_logger.addHandler(handler)

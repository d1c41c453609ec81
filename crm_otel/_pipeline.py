"""The trace pipeline's seam: the sampler and the processor in front of each exporter."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping

from opentelemetry.metrics import get_meter_provider
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import Sampler

from crm_otel._env import EnvReader, define
from crm_otel._export_health import ReportingSpanExporter
from crm_otel._log import internal_logger
from crm_otel._settings import Settings
from crm_otel.logs import redacting_span_exporter
from crm_otel.metrics import decision_listener, tenant_span_exporter
from sampling import ConsistentBaselineSampler, TailSamplingProcessor, TraceRelay

OTEL_BSP_SCHEDULE_DELAY = define(
    "OTEL_BSP_SCHEDULE_DELAY",
    "5000",
    "Milliseconds between exports of kept spans (the SDK's meaning, for the tail's queue).",
    standard=True,
)
OTEL_BSP_MAX_EXPORT_BATCH_SIZE = define(
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "512",
    "Kept spans per export call (the SDK's meaning, for the tail's queue).",
    standard=True,
)


def span_pipeline(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> tuple[Sampler | None, Callable[[SpanExporter], SpanProcessor]]:
    """The head sampler and the export-processor factory the configurator installs.

    Every span is recorded; the head sampler marks the consistent baseline share, and
    each exporter sits behind a tail processor that keeps whole traces by the policy.
    Its self-metrics go to the global meter provider, which `setup_metrics` installed.
    `OTEL_BSP_SCHEDULE_DELAY` and `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` keep their SDK meaning
    for the tail processor's export queue. Exporters get redacted copies of the spans.
    """
    environ = os.environ if environ is None else environ
    _route_sampling_logs()
    policy = settings.sampling
    env = EnvReader(environ)
    schedule_delay = env.integer(OTEL_BSP_SCHEDULE_DELAY, 1)
    batch_size = env.integer(OTEL_BSP_MAX_EXPORT_BATCH_SIZE, 1)
    sampler = ConsistentBaselineSampler.from_policy(policy)
    if not settings.tail_sampling:
        # Spans are still all recorded (metrics from spans stay unbiased); the SDK's
        # processor exports the sampled baseline only.
        def batch_processor(exporter: SpanExporter) -> SpanProcessor:
            return BatchSpanProcessor(
                _redacting(exporter),
                schedule_delay_millis=schedule_delay,
                max_export_batch_size=batch_size,
            )

        return sampler, batch_processor

    def export_processor(exporter: SpanExporter) -> SpanProcessor:
        # Exemplars name only traces this processor keeps: it tells them its decisions.
        return TailSamplingProcessor(
            _redacting(exporter),
            policy,
            meter_provider=get_meter_provider(),
            schedule_delay_millis=schedule_delay,
            max_export_batch_size=batch_size,
            relay=_relay(settings),
            on_decision=decision_listener(),
        )

    return sampler, export_processor


def _redacting(exporter: SpanExporter) -> SpanExporter:
    # Redacted copies first: the tenant counts and the exporter see what leaves the process.
    return redacting_span_exporter(tenant_span_exporter(ReportingSpanExporter(exporter)))


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

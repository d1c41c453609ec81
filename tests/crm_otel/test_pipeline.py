"""The trace pipeline seam: crm-otel's head sampler and tail processor, from the settings."""

from __future__ import annotations

import logging

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from crm_otel._configurator import _redacted_and_counted as redacted_and_counted
from crm_otel._log import internal_logger
from crm_otel._pipeline import span_pipeline
from crm_otel._settings import Settings
from sampling import ConsistentBaselineSampler, TailSamplingProcessor


def test_production_pipeline_samples_the_configured_ratio() -> None:
    """Production gets the consistent baseline sampler at the ratio, and a tail processor."""
    settings = Settings.from_env({"CRM_OTEL_SAMPLING_RATIO": "0.25"})
    sampler, export_processor = span_pipeline(settings)
    assert isinstance(sampler, ConsistentBaselineSampler)
    assert sampler.get_description() == "ConsistentBaselineSampler{0.25}"
    processor = export_processor(InMemorySpanExporter())
    try:
        assert isinstance(processor, TailSamplingProcessor)
    finally:
        processor.shutdown()


def test_development_pipeline_keeps_everything() -> None:
    """Development samples every trace at the head."""
    settings = Settings.from_env({"CRM_OTEL_ENVIRONMENT": "development"})
    sampler, _ = span_pipeline(settings)
    assert isinstance(sampler, ConsistentBaselineSampler)
    assert sampler.threshold == 0


def test_bsp_variables_keep_their_meaning_for_the_export_queue() -> None:
    """`OTEL_BSP_SCHEDULE_DELAY` and `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` set the tail's export."""
    environ = {"OTEL_BSP_SCHEDULE_DELAY": "250", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "64"}
    _, export_processor = span_pipeline(Settings.from_env(environ))
    processor = export_processor(InMemorySpanExporter())
    try:
        assert isinstance(processor, TailSamplingProcessor)
        assert processor._delay == 0.25
        assert processor._batch_size == 64
    finally:
        processor.shutdown()


def test_bad_bsp_value_falls_back_to_the_sdk_default() -> None:
    """A bad `OTEL_BSP_SCHEDULE_DELAY` is reported in one line and the SDK default is used."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    internal_logger.addHandler(handler)
    try:
        _, export_processor = span_pipeline(Settings.from_env({"OTEL_BSP_SCHEDULE_DELAY": "soon"}))
    finally:
        internal_logger.removeHandler(handler)
    processor = export_processor(InMemorySpanExporter())
    try:
        assert isinstance(processor, TailSamplingProcessor)
        assert processor._delay == 5.0
    finally:
        processor.shutdown()
    assert [r.getMessage() for r in records] == [
        "OTEL_BSP_SCHEDULE_DELAY: expected a whole number of at least 1, got 'soon'; "
        "using the default '5000'"
    ]


def test_tail_sampling_off_exports_the_baseline_only() -> None:
    """`CRM_OTEL_TAIL_SAMPLING=false`: every span is still recorded (metrics from spans see
    it), but only the sampled baseline is exported; an error outside it is not kept."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Status, StatusCode

    settings = Settings.from_env({"CRM_OTEL_TAIL_SAMPLING": "false"})
    sampler, export_processor = span_pipeline(settings)
    exporter = InMemorySpanExporter()
    processor = export_processor(exporter)
    assert not isinstance(processor, TailSamplingProcessor)
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    recorded = 0
    for _ in range(400):
        with tracer.start_as_current_span("request") as span:
            recorded += span.is_recording()
            span.set_status(Status(StatusCode.ERROR))
    provider.force_flush()
    exported = exporter.get_finished_spans()
    provider.shutdown()
    assert recorded == 400
    assert exported and all(s.context.trace_flags.sampled for s in exported)
    assert len(exported) < 400 * 0.25  # the 10% baseline, errors notwithstanding


def test_hold_variables_set_the_relay_and_zero_turns_it_off() -> None:
    """`CRM_OTEL_SAMPLING_HOLD_MS` and `_HOLD_MAX_SPANS` bound the relay behind the tail
    processor; a hold of 0 (or development) runs none."""
    environ = {"CRM_OTEL_SAMPLING_HOLD_MS": "1500", "CRM_OTEL_SAMPLING_HOLD_MAX_SPANS": "40"}
    _, export_processor = span_pipeline(Settings.from_env(environ))
    processor = export_processor(InMemorySpanExporter())
    try:
        assert isinstance(processor, TailSamplingProcessor)
        relay = processor._relay
        assert relay is not None and relay._hold_s == 1.5 and relay._max_held == 40
    finally:
        processor.shutdown()
    for off in ({"CRM_OTEL_SAMPLING_HOLD_MS": "0"}, {"CRM_OTEL_ENVIRONMENT": "development"}):
        _, export_processor = span_pipeline(Settings.from_env(off))
        processor = export_processor(InMemorySpanExporter())
        try:
            assert isinstance(processor, TailSamplingProcessor)
            assert processor._relay is None
        finally:
            processor.shutdown()


def test_every_exporter_gets_redacted_copies_and_tail_decisions_see_the_span() -> None:
    """With the configurator's wrapping, the tail processor and the SDK's batch processor
    both hand the exporter sensitive values redacted, while the span itself keeps them; an
    error span is still kept by the tail decision."""
    for environ in (
        {"CRM_OTEL_ENVIRONMENT": "production", "CRM_OTEL_SAMPLING_RATIO": "0"},
        {"CRM_OTEL_TAIL_SAMPLING": "false", "CRM_OTEL_ENVIRONMENT": "development"},
    ):
        exporter = InMemorySpanExporter()
        _, export_processor = span_pipeline(
            Settings.from_env(environ), wrap_exporter=redacted_and_counted
        )
        processor = export_processor(exporter)
        provider = TracerProvider()
        provider.add_span_processor(processor)
        with provider.get_tracer("t").start_as_current_span(
            "login", attributes={"user.password": "hunter2"}
        ) as span:
            span.set_status(Status(StatusCode.ERROR))
        provider.force_flush()
        provider.shutdown()
        [exported] = exporter.get_finished_spans()
        assert dict(exported.attributes or {}) == {"user.password": "[REDACTED]"}, environ
        assert dict(span.attributes or {}) == {"user.password": "hunter2"}  # type: ignore[attr-defined]

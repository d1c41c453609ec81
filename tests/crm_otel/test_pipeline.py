"""The trace pipeline seam: crm-otel's head sampler and tail processor, from the settings."""

from __future__ import annotations

import logging

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

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
    _, export_processor = span_pipeline(Settings.from_env({}), environ)
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
        _, export_processor = span_pipeline(
            Settings.from_env({}), {"OTEL_BSP_SCHEDULE_DELAY": "soon"}
        )
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

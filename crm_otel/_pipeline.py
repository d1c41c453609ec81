"""The trace pipeline's seam: the sampler and the processor in front of each exporter."""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import Sampler

from crm_otel._settings import Settings


def span_pipeline(
    settings: Settings,
) -> tuple[Sampler | None, Callable[[SpanExporter], SpanProcessor]]:
    """The head sampler and the export-processor factory the configurator installs."""
    return None, BatchSpanProcessor

"""Flushing the global providers from hooks that run just before a process goes away."""

from __future__ import annotations

from opentelemetry import metrics, trace

from crm_otel._log import internal_logger

FLUSH_TIMEOUT_MILLIS = 5_000


def flush_all(timeout_millis: int = FLUSH_TIMEOUT_MILLIS) -> None:
    """Force-flush the tracer, meter and logger providers; never raises."""
    from crm_otel._sdk import get_logger_provider

    for provider in (
        trace.get_tracer_provider(),
        metrics.get_meter_provider(),
        get_logger_provider(),
    ):
        flush = getattr(provider, "force_flush", None)
        if flush is None:
            continue
        try:
            flush(timeout_millis)
        except Exception:  # a flush must never take the process down
            internal_logger.exception("flushing %s failed", type(provider).__name__)

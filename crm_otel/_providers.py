"""Flushing the global providers from hooks that run just before a process goes away."""

from __future__ import annotations

from opentelemetry import metrics, trace

from crm_otel._log import internal_logger

FLUSH_TIMEOUT_MILLIS = 5_000


def flush_all(timeout_millis: int = FLUSH_TIMEOUT_MILLIS, *, leaving: bool = False) -> None:
    """Force-flush the tracer, logger and meter providers; never raises.

    `leaving`: the process exits next without atexit hooks (a pool child), so the meter
    provider is shut down instead (its final export), and its timer starts no export after
    the caller's last metrics state write.
    """
    from crm_otel._sdk import get_logger_provider

    for provider in (
        trace.get_tracer_provider(),
        get_logger_provider(),
        metrics.get_meter_provider(),
    ):
        name = "force_flush"
        if leaving and provider is metrics.get_meter_provider():
            name = "shutdown"
        flush = getattr(provider, name, None)
        if flush is None:
            continue
        try:
            flush(timeout_millis)
        except Exception:  # a flush must never take the process down
            internal_logger.exception("flushing %s failed", type(provider).__name__)

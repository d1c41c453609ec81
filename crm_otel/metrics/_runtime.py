"""The metrics subsystem of this process, once `setup_metrics` has built it."""

from __future__ import annotations

import contextvars
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crm_otel._log import internal_logger
from crm_otel.metrics._exposition import (
    CONTENT_TYPE,
    OPENMETRICS_CONTENT_TYPE,
    render,
    render_openmetrics,
    wants_openmetrics,
)
from crm_otel.metrics._instruments import Instruments
from crm_otel.metrics._settings import MetricsSettings

if TYPE_CHECKING:
    from crm_otel.metrics._exemplars import ExemplarStore
    from crm_otel.metrics._recorder import ProcessRecorder
    from crm_otel.metrics._redis import RedisPoller

in_app_work: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "crm_otel_in_app_work", default=False
)
"""True while a Django request or a Celery task runs: Redis commands issued then are the
app's cache operations (the worker's broker polling is not)."""

MAX_PROBLEMS_LOGGED = 20
"""Merge problems (damaged files, mismatched buckets) logged per process; later ones are
only counted, so a damaged directory cannot flood the log."""


@dataclass
class Runtime:
    """What the middleware, hooks and signal handlers record into."""

    settings: MetricsSettings
    instruments: Instruments
    recorder: ProcessRecorder
    poller: RedisPoller
    exemplars: ExemplarStore | None = None
    problems_seen: int = 0

    def scrape(
        self, authorization: str | None, accept: str | None = None
    ) -> tuple[int, str, bytes]:
        """Answer a scrape: status, content type and body (OpenMetrics with exemplars when
        `accept` takes it and exemplars are on, else Prometheus text)."""
        token = self.settings.token
        if token is not None and not hmac.compare_digest(
            (authorization or "").encode(), f"Bearer {token}".encode()
        ):
            return (
                401,
                "text/plain; charset=utf-8",
                b"401 Unauthorized: a bearer token is required\n",
            )
        result = self.recorder.collect()
        for problem in result.problems:
            self.problems_seen += 1
            if self.problems_seen <= MAX_PROBLEMS_LOGGED:
                internal_logger.warning("metrics merge: %s", problem)
        if self.settings.exemplars and wants_openmetrics(accept):
            return (
                200,
                OPENMETRICS_CONTENT_TYPE,
                render_openmetrics(result.families, result.exemplars),
            )
        return 200, CONTENT_TYPE, render(result.families)


_current: Runtime | None = None


def current() -> Runtime | None:
    """This process's runtime, or None when metrics are off or not set up."""
    return _current


def install(runtime: Runtime | None) -> None:
    """Make `runtime` the current one (None turns recording off)."""
    global _current
    _current = runtime

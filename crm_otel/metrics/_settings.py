"""Settings of the metrics subsystem, read from the environment."""

from __future__ import annotations

import getpass
import hashlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass

from crm_otel._env import EnvReader, define, register_settings

CRM_OTEL_METRICS_ENABLED = define(
    "CRM_OTEL_METRICS_ENABLED",
    "true",
    "Record the design's metrics and answer the metrics path; `false` records nothing "
    "(OTLP metric exporters named by OTEL_METRICS_EXPORTER still get the SDK's provider).",
)
CRM_OTEL_METRICS_PATH = define(
    "CRM_OTEL_METRICS_PATH",
    "/metrics",
    "Path on the app's own port where Prometheus text is served.",
)
CRM_OTEL_METRICS_TOKEN = define(
    "CRM_OTEL_METRICS_TOKEN",
    "",
    "When set, the metrics path and port require `Authorization: Bearer <token>` (401 otherwise).",
    secret=True,
)
CRM_OTEL_METRICS_DIR = define(
    "CRM_OTEL_METRICS_DIR",
    "",
    "Directory of the per-process state files merged at scrape time; default "
    "`<tmp>/crm-otel-metrics-<user>-<hash of the working directory>`.",
)
CRM_OTEL_METRICS_WRITE_INTERVAL_MS = define(
    "CRM_OTEL_METRICS_WRITE_INTERVAL_MS",
    "500",
    "How often each process writes its state file (50 to 1000 ms): the staleness bound "
    "of a scrape.",
)
CRM_OTEL_METRICS_HOST = define(
    "CRM_OTEL_METRICS_HOST",
    "127.0.0.1",
    "Address of the standalone metrics port of processes that serve no HTTP (Celery workers).",
)
CRM_OTEL_METRICS_PORT = define(
    "CRM_OTEL_METRICS_PORT",
    "9464",
    "Standalone metrics port of the Celery worker's main process; 0 turns it off.",
)
CRM_OTEL_METRICS_LABEL_CAP = define(
    "CRM_OTEL_METRICS_LABEL_CAP",
    "100",
    "Distinct values kept per open-ended label (workflow, action_type, type, task), in each "
    "process and across the server's processes; later values become `other` and are counted.",
)
CRM_OTEL_METRICS_REDIS_POLL_SECONDS = define(
    "CRM_OTEL_METRICS_REDIS_POLL_SECONDS",
    "5",
    "How often Redis is asked for `INFO stats` (evictions) and queue lengths (LLEN).",
)
CRM_OTEL_TENANTS_TOP_N = define(
    "CRM_OTEL_TENANTS_TOP_N",
    "20",
    "Orgs named in the `tenant_*` cost families (the busiest by request plus task time, "
    "1 to 1000); the rest are summed as `other`. Each process tracks ten times as many "
    "(at least 100) exactly.",
)

CRM_OTEL_METRICS_EXEMPLARS = define(
    "CRM_OTEL_METRICS_EXEMPLARS",
    "true",
    "Attach trace-id exemplars of kept traces to the latency histograms, served when the "
    "scraper accepts OpenMetrics; `false` records none and always serves Prometheus text.",
)


@dataclass(frozen=True)
class MetricsSettings:
    """The effective configuration of the metrics subsystem."""

    enabled: bool
    path: str
    token: str | None
    directory: str
    write_interval_s: float
    host: str
    port: int
    label_cap: int
    redis_poll_s: float
    tenants_top_n: int = 20
    exemplars: bool = True

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], *, reader: EnvReader | None = None
    ) -> MetricsSettings:
        """Build the settings from `environ`; bad values fall back to their defaults."""
        env = reader or EnvReader(environ)
        path = env.text(CRM_OTEL_METRICS_PATH)
        if not path.startswith("/"):
            path = "/" + path
        return cls(
            enabled=env.boolean(CRM_OTEL_METRICS_ENABLED),
            path=path,
            token=env.raw(CRM_OTEL_METRICS_TOKEN),
            directory=env.raw(CRM_OTEL_METRICS_DIR) or default_directory(),
            write_interval_s=env.integer(CRM_OTEL_METRICS_WRITE_INTERVAL_MS, 50, 1000) / 1000,
            host=env.text(CRM_OTEL_METRICS_HOST),
            port=env.integer(CRM_OTEL_METRICS_PORT, 0, 65535),
            label_cap=env.integer(CRM_OTEL_METRICS_LABEL_CAP, 1, 10_000),
            redis_poll_s=env.number(CRM_OTEL_METRICS_REDIS_POLL_SECONDS, 1.0, 3600.0),
            tenants_top_n=env.integer(CRM_OTEL_TENANTS_TOP_N, 1, 1000),
            exemplars=env.boolean(CRM_OTEL_METRICS_EXEMPLARS),
        )


def default_directory() -> str:
    """Per user and per project (working directory), so two apps on a host never mix."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry (containers): the uid still separates users
        user = str(os.getuid())
    project = hashlib.sha256(os.getcwd().encode()).hexdigest()[:12]
    return os.path.join(tempfile.gettempdir(), f"crm-otel-metrics-{user}-{project}")


register_settings(lambda reader: MetricsSettings.from_env(reader.environ, reader=reader))

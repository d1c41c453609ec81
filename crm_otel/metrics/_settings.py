"""Settings of the metrics subsystem, read from the environment."""

from __future__ import annotations

import getpass
import hashlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass

from crm_otel._env import EnvReader, Slot
from crm_otel._variables import (
    CRM_OTEL_METRICS_DIR,
    CRM_OTEL_METRICS_ENABLED,
    CRM_OTEL_METRICS_EXEMPLARS,
    CRM_OTEL_METRICS_HOST,
    CRM_OTEL_METRICS_LABEL_CAP,
    CRM_OTEL_METRICS_PATH,
    CRM_OTEL_METRICS_PORT,
    CRM_OTEL_METRICS_REDIS_POLL_SECONDS,
    CRM_OTEL_METRICS_TOKEN,
    CRM_OTEL_METRICS_WRITE_INTERVAL_MS,
    CRM_OTEL_TENANTS_TOP_N,
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


ACTIVE: Slot[MetricsSettings] = Slot(MetricsSettings.from_env)
"""The metrics settings in effect in this process."""

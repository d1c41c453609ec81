"""crm-otel's core settings, read from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from crm_otel._env import EnvReader, Slot
from crm_otel._identity import AttributePath, parse_org_paths
from crm_otel._variables import (
    CRM_OTEL_ENVIRONMENT,
    CRM_OTEL_KEEP_ERRORS,
    CRM_OTEL_ORG_ATTRIBUTE,
    CRM_OTEL_REDIS_ROOT_SPANS,
    CRM_OTEL_SAMPLING_DECISION_CACHE_SIZE,
    CRM_OTEL_SAMPLING_EXPORT_QUEUE_SIZE,
    CRM_OTEL_SAMPLING_HOLD_MAX_SPANS,
    CRM_OTEL_SAMPLING_HOLD_MS,
    CRM_OTEL_SAMPLING_MAX_BUFFERED_SPANS,
    CRM_OTEL_SAMPLING_MAX_SPANS_PER_TRACE,
    CRM_OTEL_SAMPLING_MAX_TRACE_AGE_MS,
    CRM_OTEL_SAMPLING_RATIO,
    CRM_OTEL_SAMPLING_RELAY_REDIS_URL,
    CRM_OTEL_SAMPLING_ROOT_GRACE_MS,
    CRM_OTEL_SLOW_THRESHOLD_MS,
    CRM_OTEL_SQLCOMMENTER,
    CRM_OTEL_TAIL_SAMPLING,
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
    OTEL_BSP_SCHEDULE_DELAY,
)
from sampling import SamplingPolicy
from semconv.attributes import Environment


@dataclass(frozen=True)
class Settings:
    """The effective core configuration."""

    environment: str
    sampling: SamplingPolicy
    tail_sampling: bool
    relay_redis_url: str | None
    sqlcommenter: bool
    redis_root_spans: bool
    org_paths: tuple[AttributePath, ...]
    schedule_delay_ms: int = 5000
    """`OTEL_BSP_SCHEDULE_DELAY`, for the tail processor's export queue too."""
    export_batch_size: int = 512
    """`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, for the tail processor's export queue too."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, reader: EnvReader | None = None) -> Settings:
        """Build the settings from `environ`; bad values fall back to their defaults."""
        env = reader or EnvReader(environ)
        environment = read_environment(env)
        development = environment == Environment.DEVELOPMENT.value
        ratio = env.number(CRM_OTEL_SAMPLING_RATIO, 0.0, 1.0)
        if development:  # everything is kept in development (docs/design.md, Sampling)
            ratio = 1.0
        policy = SamplingPolicy(
            ratio=ratio,
            slow_threshold_ms=env.number(CRM_OTEL_SLOW_THRESHOLD_MS, 0.0),
            keep_errors=env.boolean(CRM_OTEL_KEEP_ERRORS),
            keep_all=development,
            max_buffered_spans=env.integer(CRM_OTEL_SAMPLING_MAX_BUFFERED_SPANS, 1),
            max_spans_per_trace=env.integer(CRM_OTEL_SAMPLING_MAX_SPANS_PER_TRACE, 1),
            max_trace_age_ms=env.number(CRM_OTEL_SAMPLING_MAX_TRACE_AGE_MS, 1.0),
            root_grace_ms=env.number(CRM_OTEL_SAMPLING_ROOT_GRACE_MS, 0.0, 60_000.0),
            decision_cache_size=env.integer(CRM_OTEL_SAMPLING_DECISION_CACHE_SIZE, 1),
            export_queue_size=env.integer(CRM_OTEL_SAMPLING_EXPORT_QUEUE_SIZE, 1),
            hold_ms=env.number(CRM_OTEL_SAMPLING_HOLD_MS, 0.0),
            max_held_spans=env.integer(CRM_OTEL_SAMPLING_HOLD_MAX_SPANS, 1),
        )
        org_paths = env.parsed(
            CRM_OTEL_ORG_ATTRIBUTE,
            "comma-separated dotted attribute paths (profile.org_id, request.org)",
            parse_org_paths,
        )
        return cls(
            environment=environment,
            sampling=policy,
            tail_sampling=env.boolean(CRM_OTEL_TAIL_SAMPLING),
            relay_redis_url=env.raw(CRM_OTEL_SAMPLING_RELAY_REDIS_URL),
            sqlcommenter=env.boolean(CRM_OTEL_SQLCOMMENTER),
            redis_root_spans=env.boolean(CRM_OTEL_REDIS_ROOT_SPANS),
            org_paths=org_paths,
            schedule_delay_ms=env.integer(OTEL_BSP_SCHEDULE_DELAY, 1),
            export_batch_size=env.integer(OTEL_BSP_MAX_EXPORT_BATCH_SIZE, 1),
        )


def read_environment(env: EnvReader) -> str:
    """`CRM_OTEL_ENVIRONMENT`: production, staging or development."""
    return env.choice(CRM_OTEL_ENVIRONMENT, tuple(e.value for e in Environment))


ACTIVE: Slot[Settings] = Slot(Settings.from_env)
"""The core settings in effect in this process."""

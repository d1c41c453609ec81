"""crm-otel's core settings, read from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from crm_otel._env import EnvReader, define, register_settings
from crm_otel._identity import AttributePath, parse_org_paths
from sampling import SamplingPolicy
from semconv.attributes import Environment

CRM_OTEL_ENVIRONMENT = define(
    "CRM_OTEL_ENVIRONMENT",
    "production",
    "`production`, `staging` or `development`; becomes `deployment.environment.name` "
    "and picks the sampling defaults (development keeps every trace).",
)
CRM_OTEL_SAMPLING_RATIO = define(
    "CRM_OTEL_SAMPLING_RATIO",
    "0.1",
    "Share of successful, fast traces kept, 0.0 to 1.0 (development keeps every trace, "
    "whatever this says).",
)
CRM_OTEL_SLOW_THRESHOLD_MS = define(
    "CRM_OTEL_SLOW_THRESHOLD_MS",
    "2000",
    "A trace whose local root lasts at least this many milliseconds is kept.",
)
CRM_OTEL_KEEP_ERRORS = define("CRM_OTEL_KEEP_ERRORS", "true", "Keep every trace that has an error.")
CRM_OTEL_TAIL_SAMPLING = define(
    "CRM_OTEL_TAIL_SAMPLING",
    "true",
    "Hold each trace until its fate is known and keep errors and slow traces whole. "
    "`false` exports only the consistent baseline share (the SDK's BatchSpanProcessor): "
    "cheaper, but errors and slow traces outside the baseline are lost.",
)
CRM_OTEL_SAMPLING_MAX_BUFFERED_SPANS = define(
    "CRM_OTEL_SAMPLING_MAX_BUFFERED_SPANS",
    "20000",
    "Spans held across all undecided traces; at the cap the oldest traces holding spans "
    "are decided early.",
)
CRM_OTEL_SAMPLING_MAX_SPANS_PER_TRACE = define(
    "CRM_OTEL_SAMPLING_MAX_SPANS_PER_TRACE",
    "1000",
    "Spans held for one undecided trace; at the cap that trace is decided early.",
)
CRM_OTEL_SAMPLING_MAX_TRACE_AGE_MS = define(
    "CRM_OTEL_SAMPLING_MAX_TRACE_AGE_MS",
    "30000",
    "Age in milliseconds at which an undecided trace is decided with the spans it has.",
)
CRM_OTEL_SAMPLING_ROOT_GRACE_MS = define(
    "CRM_OTEL_SAMPLING_ROOT_GRACE_MS",
    "50",
    "After the local root ends, milliseconds its open children get before the decision.",
)
CRM_OTEL_SAMPLING_DECISION_CACHE_SIZE = define(
    "CRM_OTEL_SAMPLING_DECISION_CACHE_SIZE",
    "10000",
    "Decided traces remembered so that spans ending late follow their trace's decision.",
)
CRM_OTEL_SAMPLING_EXPORT_QUEUE_SIZE = define(
    "CRM_OTEL_SAMPLING_EXPORT_QUEUE_SIZE",
    "8192",
    "Kept spans waiting for the exporter; spans beyond it are dropped and counted.",
)
CRM_OTEL_SAMPLING_HOLD_MS = define(
    "CRM_OTEL_SAMPLING_HOLD_MS",
    "30000",
    "Milliseconds a dropped trace that enqueued a Celery task is held, waiting for the task "
    "to signal keep (an error or slowness in the task); 0 turns holding off.",
)
CRM_OTEL_SAMPLING_HOLD_MAX_SPANS = define(
    "CRM_OTEL_SAMPLING_HOLD_MAX_SPANS",
    "10000",
    "Spans held across dropped traces waiting for a task's keep signal; beyond it the "
    "oldest held traces are dropped for good.",
)
CRM_OTEL_SAMPLING_RELAY_REDIS_URL = define(
    "CRM_OTEL_SAMPLING_RELAY_REDIS_URL",
    "",
    "Redis URL on which Celery tasks tell web processes to keep a held trace; unset uses "
    "the Celery broker when it is Redis, else the first Redis cache in Django's CACHES.",
    secret=True,
)
CRM_OTEL_SQLCOMMENTER = define(
    "CRM_OTEL_SQLCOMMENTER",
    "false",
    "Append sqlcommenter comments (trace context) to SQL sent by psycopg2 or psycopg 3.",
)
CRM_OTEL_REDIS_ROOT_SPANS = define(
    "CRM_OTEL_REDIS_ROOT_SPANS",
    "false",
    "Trace Redis commands issued outside any trace (a Celery worker's broker polling).",
)
CRM_OTEL_ORG_ATTRIBUTE = define(
    "CRM_OTEL_ORG_ATTRIBUTE",
    "org_id",
    "Where the org id is found: dotted attribute paths, comma-separated, tried in order; "
    "one starting with `request.` is read from the request (`request.org`, "
    "`request.tenant.id`), any other from `request.user` (`profile.org_id`); a model "
    "instance at the end gives its primary key. A request attribute `crm_org_id` set by "
    "the app wins.",
)


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

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, reader: EnvReader | None = None) -> Settings:
        """Build the settings from `environ`; bad values fall back to their defaults."""
        env = reader or EnvReader(environ)
        environment = env.choice(CRM_OTEL_ENVIRONMENT, tuple(e.value for e in Environment))
        development = environment == Environment.DEVELOPMENT.value
        ratio = env.number(CRM_OTEL_SAMPLING_RATIO, 0.0, 1.0)
        if development:  # the contract: everything is kept in development
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
        )


register_settings(lambda reader: Settings.from_env(reader.environ, reader=reader))

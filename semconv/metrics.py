"""The metric catalogue: one `MetricDefinition` per metric the project records.

Each definition is a module constant; `CATALOGUE` is built from them, in the order they
appear here (the order `/metrics` lists its families), and `definition.create(meter)`
creates a definition's instrument. OpenTelemetry names use the `crm.` namespace (so they
never collide with the instrumentations' own `http.server.*`/`db.client.*` metrics) and
proper units; `prometheus_name` is the exact family crm-otel's `/metrics` exposes.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

from semconv._definition import InstrumentKind, MetricDefinition

# --- label values ------------------------------------------------------------------------

OTHER: Final = "other"
"""The value a label takes once its cap of distinct values is reached, or for an
unexpected value of a fixed set."""

UNMATCHED_PATH: Final = "unmatched"
"""The `path` label of requests that match no route (404s from the resolver)."""


class QueryType(Enum):
    """Values of the `query_type` label of `db_query_duration_ms`."""

    SELECT = "select"
    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"
    OTHER = "other"


class DbErrorType(Enum):
    """Values of the `error_type` label of `db_errors_total`."""

    TIMEOUT = "timeout"
    CONNECTION = "connection"
    INTEGRITY = "integrity"
    PROGRAMMING = "programming"
    DATA = "data"
    OTHER = "other"


class CacheStatus(Enum):
    """Values of the `status` label of `cache_operations_total`."""

    HIT = "hit"
    MISS = "miss"
    OK = "ok"


class LookupResult(Enum):
    """Values of the `result` label of the cache-lookup counters behind the hit rates."""

    HIT = "hit"
    MISS = "miss"


class WorkflowStatus(Enum):
    """Values of the `status` label of `workflow_runs_total`."""

    COMPLETED = "completed"
    FAILED = "failed"


class TaskStatus(Enum):
    """Values of the `status` label of `celery_tasks_total` (Celery's states, lower case)."""

    SUCCESS = "success"
    FAILURE = "failure"
    RETRY = "retry"
    REVOKED = "revoked"
    OTHER = "other"


# --- requests ----------------------------------------------------------------------------

HTTP_REQUESTS: Final = MetricDefinition(
    name="crm.http.requests",
    kind=InstrumentKind.COUNTER,
    unit="{request}",
    description="Django requests served, by method, route template and status code.",
    labels=("method", "path", "status"),
    prometheus_name="http_requests_total",
)
HTTP_REQUEST_DURATION: Final = MetricDefinition(
    name="crm.http.request.duration",
    kind=InstrumentKind.HISTOGRAM,
    unit="ms",
    description="Time Django took to produce the response, in milliseconds.",
    labels=("method", "path", "status"),
    prometheus_name="http_request_duration_ms",
)
HTTP_ERRORS: Final = MetricDefinition(
    name="crm.http.errors",
    kind=InstrumentKind.COUNTER,
    unit="{request}",
    description="Requests answered with a 5xx status.",
    labels=("method", "path", "status"),
    prometheus_name="http_errors_total",
)

# --- workflows (from `workflow.execute` spans) ---------------------------------------------

WORKFLOW_RUNS: Final = MetricDefinition(
    name="crm.workflow.runs",
    kind=InstrumentKind.COUNTER,
    unit="{run}",
    description="Workflow runs, by workflow name and outcome (completed, failed).",
    labels=("workflow", "status"),
    prometheus_name="workflow_runs_total",
)
WORKFLOW_DURATION: Final = MetricDefinition(
    name="crm.workflow.duration",
    kind=InstrumentKind.HISTOGRAM,
    unit="ms",
    description="Duration of a workflow run, in milliseconds.",
    labels=("workflow",),
    prometheus_name="workflow_duration_ms",
)
WORKFLOW_ACTION_FAILURES: Final = MetricDefinition(
    name="crm.workflow.action_failures",
    kind=InstrumentKind.COUNTER,
    unit="{failure}",
    description="Workflow actions that completed with status failure, by action type.",
    labels=("action_type",),
    prometheus_name="workflow_action_failures_total",
)

# --- search (from `search.query` spans) ----------------------------------------------------

SEARCH_QUERY_LATENCY: Final = MetricDefinition(
    name="crm.search.latency",
    kind=InstrumentKind.HISTOGRAM,
    unit="ms",
    description="Latency of a search, in milliseconds, by search type.",
    labels=("type",),
    prometheus_name="search_query_latency_ms",
)
SEARCH_RESULTS: Final = MetricDefinition(
    name="crm.search.results",
    kind=InstrumentKind.COUNTER,
    unit="{result}",
    description=(
        "Results returned by searches (the sum of each search's result count), by search type."
    ),
    labels=("type",),
    prometheus_name="search_results_total",
)
SEARCH_CACHE_HIT_RATE: Final = MetricDefinition(
    name="crm.search.cache.hit_rate",
    kind=InstrumentKind.GAUGE,
    unit="1",
    description=(
        "Share of searches answered from the cache since start (0 to 1), by search type; "
        "computed at scrape time from `search_cache_lookups_total`."
    ),
    labels=("type",),
    prometheus_name="search_cache_hit_rate",
)
SEARCH_CACHE_LOOKUPS: Final = MetricDefinition(
    name="crm.search.cache.lookups",
    kind=InstrumentKind.COUNTER,
    unit="{lookup}",
    description="Searches by search type and cache result (hit, miss): the input of the hit rate.",
    labels=("type", "result"),
    prometheus_name="search_cache_lookups_total",
)

# --- WebSocket (helpers for the app's consumers) ---------------------------------------------

WEBSOCKET_ACTIVE_CONNECTIONS: Final = MetricDefinition(
    name="crm.websocket.active_connections",
    kind=InstrumentKind.UP_DOWN_COUNTER,
    unit="{connection}",
    description="WebSocket connections open right now.",
    prometheus_name="websocket_active_connections_gauge",
)
WEBSOCKET_MESSAGES_SENT: Final = MetricDefinition(
    name="crm.websocket.messages_sent",
    kind=InstrumentKind.COUNTER,
    unit="{message}",
    description="WebSocket messages sent to clients.",
    prometheus_name="websocket_messages_sent_total",
)
WEBSOCKET_CONNECTION_DURATION: Final = MetricDefinition(
    name="crm.websocket.connection.duration",
    kind=InstrumentKind.HISTOGRAM,
    unit="s",
    description="How long a WebSocket connection stayed open, in seconds.",
    prometheus_name="websocket_connection_duration_seconds",
)

# --- lead scoring (from `lead_score.calculate` spans) -------------------------------------------

LEAD_SCORE_CALCULATION_DURATION: Final = MetricDefinition(
    name="crm.lead_score.duration",
    kind=InstrumentKind.HISTOGRAM,
    unit="ms",
    description="Duration of a lead score calculation (cached answers included), in milliseconds.",
    prometheus_name="lead_score_calculation_duration_ms",
)
LEAD_SCORE_CACHE_HIT_RATE: Final = MetricDefinition(
    name="crm.lead_score.cache.hit_rate",
    kind=InstrumentKind.GAUGE,
    unit="1",
    description=(
        "Share of lead score calculations answered from the cache since start (0 to 1); "
        "computed at scrape time from `lead_score_cache_lookups_total`."
    ),
    prometheus_name="lead_score_cache_hit_rate",
)
LEAD_SCORE_CACHE_LOOKUPS: Final = MetricDefinition(
    name="crm.lead_score.cache.lookups",
    kind=InstrumentKind.COUNTER,
    unit="{lookup}",
    description="Lead score calculations by cache result (hit, miss): the input of the hit rate.",
    labels=("result",),
    prometheus_name="lead_score_cache_lookups_total",
)
LEAD_SCORE_RECALCULATIONS: Final = MetricDefinition(
    name="crm.lead_score.recalculations",
    kind=InstrumentKind.COUNTER,
    unit="{calculation}",
    description="Lead score calculations that replaced a score computed earlier.",
    prometheus_name="lead_score_recalculations_total",
)

# --- database ------------------------------------------------------------------------------

DB_CONNECTIONS_ACTIVE: Final = MetricDefinition(
    name="crm.db.connections.active",
    kind=InstrumentKind.UP_DOWN_COUNTER,
    unit="{connection}",
    description="Database connections Django holds right now: open, or checked out of its pool.",
    prometheus_name="db_connections_active_gauge",
)
DB_QUERY_DURATION: Final = MetricDefinition(
    name="crm.db.query.duration",
    kind=InstrumentKind.HISTOGRAM,
    unit="ms",
    description="Duration of a database query run through Django, in milliseconds, by query type.",
    labels=("query_type",),
    prometheus_name="db_query_duration_ms",
)
DB_ERRORS: Final = MetricDefinition(
    name="crm.db.errors",
    kind=InstrumentKind.COUNTER,
    unit="{error}",
    description="Database errors (failed queries and failed connections), by error type.",
    labels=("error_type",),
    prometheus_name="db_errors_total",
)
DB_POOL_EXHAUSTED: Final = MetricDefinition(
    name="crm.db.pool_exhausted",
    kind=InstrumentKind.COUNTER,
    unit="{event}",
    description=(
        "Connections refused for lack of a slot: none left on the server, or none free in time "
        "in Django's pool."
    ),
    prometheus_name="db_pool_exhausted_total",
)

# --- cache (Redis) ---------------------------------------------------------------------------

CACHE_HIT_RATE: Final = MetricDefinition(
    name="crm.cache.hit_rate",
    kind=InstrumentKind.GAUGE,
    unit="1",
    description=(
        "Share of Redis lookups that found their key since start (0 to 1); computed at scrape "
        "time from `cache_operations_total`."
    ),
    prometheus_name="cache_hit_rate_gauge",
)
CACHE_OPERATIONS: Final = MetricDefinition(
    name="crm.cache.operations",
    kind=InstrumentKind.COUNTER,
    unit="{operation}",
    description=(
        "Redis commands on the app's configured caches (Django's `CACHES`) issued inside a "
        "request or task by the cache framework or app code, never by Celery's broker or result "
        "backend, by command and status (hit or miss for lookups, ok otherwise)."
    ),
    labels=("operation", "status"),
    prometheus_name="cache_operations_total",
)
CACHE_EVICTIONS: Final = MetricDefinition(
    name="crm.cache.evictions",
    kind=InstrumentKind.COUNTER,
    unit="{key}",
    description="Keys the Redis server evicted since it started (`evicted_keys` of `INFO stats`).",
    prometheus_name="cache_evictions_total",
    observable=True,
)

# --- Celery ----------------------------------------------------------------------------------

CELERY_TASKS: Final = MetricDefinition(
    name="crm.celery.tasks",
    kind=InstrumentKind.COUNTER,
    unit="{task}",
    description="Celery tasks run, by task name and final state.",
    labels=("task", "status"),
    prometheus_name="celery_tasks_total",
)
CELERY_TASK_DURATION: Final = MetricDefinition(
    name="crm.celery.task.duration",
    kind=InstrumentKind.HISTOGRAM,
    unit="s",
    description="Run time of a Celery task, in seconds, by task name.",
    labels=("task",),
    prometheus_name="celery_task_duration_seconds",
)
CELERY_QUEUE_LENGTH: Final = MetricDefinition(
    name="crm.celery.queue.length",
    kind=InstrumentKind.GAUGE,
    unit="{message}",
    description="Messages waiting in a broker queue, read from the broker (Redis LLEN).",
    labels=("queue",),
    prometheus_name="celery_queue_length_gauge",
    observable=True,
)

# --- process -----------------------------------------------------------------------------------

PROCESS_RESIDENT_MEMORY: Final = MetricDefinition(
    name="crm.process.memory.rss",
    kind=InstrumentKind.GAUGE,
    unit="By",
    description=(
        "Resident memory of the processes behind this endpoint, in bytes (summed over live ones)."
    ),
    prometheus_name="process_resident_memory_bytes",
    observable=True,
)
PROCESS_CPU_TIME: Final = MetricDefinition(
    name="crm.process.cpu.time",
    kind=InstrumentKind.COUNTER,
    unit="s",
    description=(
        "CPU time (user and system) used by the processes behind this endpoint, in seconds."
    ),
    prometheus_name="process_cpu_seconds_total",
    observable=True,
)

# --- crm-otel's own ----------------------------------------------------------------------------

METRICS_LABEL_OVERFLOW: Final = MetricDefinition(
    name="crm_otel.metrics.label_overflow",
    kind=InstrumentKind.COUNTER,
    unit="{value}",
    description=(
        "Label values replaced by `other` because their label reached its cap of distinct values."
    ),
    labels=("label",),
    prometheus_name="crm_otel_metrics_label_overflow_total",
)
EXPORT_DROPPED: Final = MetricDefinition(
    name="crm_otel.export.dropped",
    kind=InstrumentKind.COUNTER,
    unit="{item}",
    description=(
        "Spans, log records and metric points dropped because their exporter failed, by signal "
        "(traces, logs, metrics)."
    ),
    labels=("signal",),
    prometheus_name="crm_otel_export_dropped_total",
    observable=True,
)
EXPORT_ITEMS: Final = MetricDefinition(
    name="crm_otel.export.items",
    kind=InstrumentKind.COUNTER,
    unit="{item}",
    description=(
        "Spans, log records and metric points handed to their exporter, by signal; those whose "
        "export failed are also in crm_otel_export_dropped_total."
    ),
    labels=("signal",),
    prometheus_name="crm_otel_export_items_total",
    observable=True,
)
METRICS_EXEMPLARS_DROPPED: Final = MetricDefinition(
    name="crm_otel.metrics.exemplars_dropped",
    kind=InstrumentKind.COUNTER,
    unit="{candidate}",
    description=(
        "Exemplar candidates discarded by a cap (undecided traces, buckets per trace) before "
        "their trace was decided."
    ),
    prometheus_name="crm_otel_metrics_exemplars_dropped_total",
    observable=True,
)

# --- the tail sampler's own (it keeps plain totals under its lock; the meter reads them) --

SAMPLING_TRACES: Final = MetricDefinition(
    name="crm_otel.sampling.traces",
    kind=InstrumentKind.COUNTER,
    unit="{trace}",
    description="Traces the tail sampler decided, by decision (kept, dropped) and reason.",
    labels=("decision", "reason"),
    prometheus_name="crm_otel_sampling_traces_total",
    observable=True,
)
SAMPLING_SPANS_BUFFERED: Final = MetricDefinition(
    name="crm_otel.sampling.spans_buffered",
    kind=InstrumentKind.UP_DOWN_COUNTER,
    unit="{span}",
    description="Spans held by the tail sampler while their trace is undecided.",
    prometheus_name="crm_otel_sampling_spans_buffered",
    observable=True,
)
SAMPLING_FORCED_DECISIONS: Final = MetricDefinition(
    name="crm_otel.sampling.forced_decisions",
    kind=InstrumentKind.COUNTER,
    unit="{trace}",
    description=(
        "Decisions forced before a trace's local root ended, by what forced them "
        "(cap: buffer, trace_spans, trace_age, flush)."
    ),
    labels=("cap",),
    prometheus_name="crm_otel_sampling_forced_decisions_total",
    observable=True,
)
SAMPLING_LATE_SPANS: Final = MetricDefinition(
    name="crm_otel.sampling.late_spans",
    kind=InstrumentKind.COUNTER,
    unit="{span}",
    description="Spans that ended after their trace was decided, by the decision they followed.",
    labels=("decision",),
    prometheus_name="crm_otel_sampling_late_spans_total",
    observable=True,
)
SAMPLING_SPANS_DROPPED: Final = MetricDefinition(
    name="crm_otel.sampling.spans_dropped",
    kind=InstrumentKind.COUNTER,
    unit="{span}",
    description="Spans of kept traces the sampler could not hand to the exporter, by reason.",
    labels=("reason",),
    prometheus_name="crm_otel_sampling_spans_dropped_total",
    observable=True,
)


SAMPLING_HELD_TRACES: Final = MetricDefinition(
    name="crm_otel.sampling.held_traces",
    kind=InstrumentKind.COUNTER,
    unit="{trace}",
    description=(
        "Dropped traces that enqueued a task and were held for a keep signal from the "
        "task, by outcome (kept, expired, overflow)."
    ),
    labels=("outcome",),
    prometheus_name="crm_otel_sampling_held_traces_total",
    observable=True,
)
SAMPLING_SPANS_HELD: Final = MetricDefinition(
    name="crm_otel.sampling.spans_held",
    kind=InstrumentKind.UP_DOWN_COUNTER,
    unit="{span}",
    description="Spans of dropped traces held for a keep signal from the tasks they enqueued.",
    prometheus_name="crm_otel_sampling_spans_held",
    observable=True,
)
SAMPLING_UPSTREAM_RELEASED: Final = MetricDefinition(
    name="crm_otel.sampling.upstream_released",
    kind=InstrumentKind.COUNTER,
    unit="{trace}",
    description=(
        "Task traces kept for an error or slowness whose enqueuing web part had already "
        "been dropped for good."
    ),
    prometheus_name="crm_otel_sampling_upstream_released_total",
    observable=True,
)
SAMPLING_RELAY_ERRORS: Final = MetricDefinition(
    name="crm_otel.sampling.relay_errors",
    kind=InstrumentKind.COUNTER,
    unit="{round}",
    description="Keep-signal exchanges with Redis that failed (Redis down or slow).",
    prometheus_name="crm_otel_sampling_relay_errors_total",
    observable=True,
)


# --- cost by tenant (org): read from the process's table of the top orgs at collection -----

TENANT_REQUESTS: Final = MetricDefinition(
    name="crm.tenant.requests",
    kind=InstrumentKind.COUNTER,
    unit="{request}",
    description="Django requests served, by org (the top orgs by busy time; the rest are `other`).",
    labels=("org",),
    prometheus_name="tenant_requests_total",
    observable=True,
)
TENANT_REQUEST_TIME: Final = MetricDefinition(
    name="crm.tenant.request.time",
    kind=InstrumentKind.COUNTER,
    unit="s",
    description="Time Django took to produce responses, in seconds, by org.",
    labels=("org",),
    prometheus_name="tenant_request_seconds_total",
    observable=True,
)
TENANT_DB_TIME: Final = MetricDefinition(
    name="crm.tenant.db.time",
    kind=InstrumentKind.COUNTER,
    unit="s",
    description="Time spent in database queries, in seconds, by org.",
    labels=("org",),
    prometheus_name="tenant_db_seconds_total",
    observable=True,
)
TENANT_DB_QUERIES: Final = MetricDefinition(
    name="crm.tenant.db.queries",
    kind=InstrumentKind.COUNTER,
    unit="{query}",
    description="Database queries run, by org.",
    labels=("org",),
    prometheus_name="tenant_db_queries_total",
    observable=True,
)
TENANT_TASKS: Final = MetricDefinition(
    name="crm.tenant.tasks",
    kind=InstrumentKind.COUNTER,
    unit="{task}",
    description="Celery tasks run, by the org of the request or task that sent them.",
    labels=("org",),
    prometheus_name="tenant_tasks_total",
    observable=True,
)
TENANT_TASK_TIME: Final = MetricDefinition(
    name="crm.tenant.task.time",
    kind=InstrumentKind.COUNTER,
    unit="s",
    description="Run time of Celery tasks, in seconds, by org.",
    labels=("org",),
    prometheus_name="tenant_task_seconds_total",
    observable=True,
)
TENANT_SPANS_RECORDED: Final = MetricDefinition(
    name="crm.tenant.spans.recorded",
    kind=InstrumentKind.COUNTER,
    unit="{span}",
    description="Spans recorded (before sampling), by org.",
    labels=("org",),
    prometheus_name="tenant_spans_recorded_total",
    observable=True,
)
TENANT_SPANS_KEPT: Final = MetricDefinition(
    name="crm.tenant.spans.kept",
    kind=InstrumentKind.COUNTER,
    unit="{span}",
    description="Spans kept by sampling and handed to the exporter, by org.",
    labels=("org",),
    prometheus_name="tenant_spans_kept_total",
    observable=True,
)
TENANT_LOG_LINES: Final = MetricDefinition(
    name="crm.tenant.log.lines",
    kind=InstrumentKind.COUNTER,
    unit="{line}",
    description="JSON log lines written to standard output, by org.",
    labels=("org",),
    prometheus_name="tenant_log_lines_total",
    observable=True,
)
TENANT_TELEMETRY_BYTES: Final = MetricDefinition(
    name="crm.tenant.telemetry.size",
    kind=InstrumentKind.COUNTER,
    unit="By",
    description=(
        "Approximate bytes of telemetry sent on, by org and signal (traces: kept spans, "
        "estimated OTLP size; logs: JSON lines written)."
    ),
    labels=("org", "signal"),
    prometheus_name="tenant_telemetry_bytes_total",
    observable=True,
)

TENANT_NONE: Final = "none"
"""The `org` label of work with no org (anonymous requests, broker polling, startup)."""

CATALOGUE: Final[tuple[MetricDefinition, ...]] = tuple(
    value for value in tuple(globals().values()) if isinstance(value, MetricDefinition)
)
"""Every metric the project records: each `MetricDefinition` above, in order."""

BY_NAME: Final[dict[str, MetricDefinition]] = {d.name: d for d in CATALOGUE}
"""The catalogue by OpenTelemetry name."""

TENANT_FAMILIES: Final[tuple[MetricDefinition, ...]] = tuple(
    d for d in CATALOGUE if d.name.startswith("crm.tenant.")
)
"""The cost-by-org families: their `org` label names the top orgs by busy time."""

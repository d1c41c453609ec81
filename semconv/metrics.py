"""The metric catalogue: one `MetricDefinition` per metric the project records.

`CATALOGUE` lists them all; `create_*` factories take a `Meter`. OpenTelemetry names use
the `crm.` namespace (so they never collide with the instrumentations' own
`http.server.*`/`db.client.*` metrics) and proper units; `prometheus_name` is the family
the design document names, exactly, which is what crm-otel's `/metrics` exposes.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any, Final

from semconv._definition import InstrumentKind, MetricDefinition

if TYPE_CHECKING:
    from collections.abc import Sequence

    from opentelemetry.metrics import CallbackT, Meter

# --- the tail sampler's own metrics ----------------------------------------------------

SAMPLING_TRACES: Final = MetricDefinition(
    name="crm_otel.sampling.traces",
    kind=InstrumentKind.COUNTER,
    unit="{trace}",
    description="Traces the tail sampler decided, by decision (kept, dropped) and reason.",
    labels=("decision", "reason"),
    prometheus_name="crm_otel_sampling_traces_total",
)
SAMPLING_SPANS_BUFFERED: Final = MetricDefinition(
    name="crm_otel.sampling.spans_buffered",
    kind=InstrumentKind.UP_DOWN_COUNTER,
    unit="{span}",
    description="Spans held by the tail sampler while their trace is undecided.",
    labels=(),
    prometheus_name="crm_otel_sampling_spans_buffered",
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
)
SAMPLING_LATE_SPANS: Final = MetricDefinition(
    name="crm_otel.sampling.late_spans",
    kind=InstrumentKind.COUNTER,
    unit="{span}",
    description="Spans that ended after their trace was decided, by the decision they followed.",
    labels=("decision",),
    prometheus_name="crm_otel_sampling_late_spans_total",
)
SAMPLING_SPANS_DROPPED: Final = MetricDefinition(
    name="crm_otel.sampling.spans_dropped",
    kind=InstrumentKind.COUNTER,
    unit="{span}",
    description="Spans of kept traces the sampler could not hand to the exporter, by reason.",
    labels=("reason",),
    prometheus_name="crm_otel_sampling_spans_dropped_total",
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
)
SAMPLING_SPANS_HELD: Final = MetricDefinition(
    name="crm_otel.sampling.spans_held",
    kind=InstrumentKind.UP_DOWN_COUNTER,
    unit="{span}",
    description="Spans of dropped traces held for a keep signal from the tasks they enqueued.",
    labels=(),
    prometheus_name="crm_otel_sampling_spans_held",
)
SAMPLING_UPSTREAM_RELEASED: Final = MetricDefinition(
    name="crm_otel.sampling.upstream_released",
    kind=InstrumentKind.COUNTER,
    unit="{trace}",
    description=(
        "Task traces kept for an error or slowness whose enqueuing web part had already "
        "been dropped for good."
    ),
    labels=(),
    prometheus_name="crm_otel_sampling_upstream_released_total",
)
SAMPLING_RELAY_ERRORS: Final = MetricDefinition(
    name="crm_otel.sampling.relay_errors",
    kind=InstrumentKind.COUNTER,
    unit="{round}",
    description="Keep-signal exchanges with Redis that failed (Redis down or slow).",
    labels=(),
    prometheus_name="crm_otel_sampling_relay_errors_total",
)


def create_sampling_traces(meter: Meter, callbacks: Sequence[CallbackT]) -> Any:
    """Observable counter of decided traces; `callbacks` report the running totals.

    The sampler keeps plain integer totals under its lock and reports them when the
    metrics are collected, so deciding a trace costs no metric call.
    """
    return SAMPLING_TRACES.create_observable(meter, callbacks)


def create_sampling_spans_buffered(meter: Meter, callbacks: Sequence[CallbackT]) -> Any:
    """Observable up-down counter of buffered spans; `callbacks` report the current count."""
    return SAMPLING_SPANS_BUFFERED.create_observable(meter, callbacks)


def create_sampling_forced_decisions(meter: Meter, callbacks: Sequence[CallbackT]) -> Any:
    """Observable counter of decisions forced early; `callbacks` report the running totals."""
    return SAMPLING_FORCED_DECISIONS.create_observable(meter, callbacks)


def create_sampling_late_spans(meter: Meter, callbacks: Sequence[CallbackT]) -> Any:
    """Observable counter of late spans; `callbacks` report the running totals."""
    return SAMPLING_LATE_SPANS.create_observable(meter, callbacks)


def create_sampling_spans_dropped(meter: Meter, callbacks: Sequence[CallbackT]) -> Any:
    """Observable counter of kept spans not handed to the exporter; running totals."""
    return SAMPLING_SPANS_DROPPED.create_observable(meter, callbacks)


def create_sampling_held_traces(meter: Meter, callbacks: Sequence[CallbackT]) -> Any:
    """Observable counter of held traces by outcome; `callbacks` report the running totals."""
    return SAMPLING_HELD_TRACES.create_observable(meter, callbacks)


def create_sampling_spans_held(meter: Meter, callbacks: Sequence[CallbackT]) -> Any:
    """Observable up-down counter of spans held for a keep signal; the current count."""
    return SAMPLING_SPANS_HELD.create_observable(meter, callbacks)


def create_sampling_upstream_released(meter: Meter, callbacks: Sequence[CallbackT]) -> Any:
    """Observable counter of kept task traces whose web part was gone; running totals."""
    return SAMPLING_UPSTREAM_RELEASED.create_observable(meter, callbacks)


def create_sampling_relay_errors(meter: Meter, callbacks: Sequence[CallbackT]) -> Any:
    """Observable counter of failed keep-signal exchanges; running totals."""
    return SAMPLING_RELAY_ERRORS.create_observable(meter, callbacks)


# --- label values of the design's metrics ----------------------------------------------

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


def _definition(
    name: str,
    kind: InstrumentKind,
    unit: str,
    description: str,
    labels: tuple[str, ...],
    prometheus_name: str,
) -> MetricDefinition:
    return MetricDefinition(name, kind, unit, description, labels, prometheus_name)


_C, _U, _H, _G = (
    InstrumentKind.COUNTER,
    InstrumentKind.UP_DOWN_COUNTER,
    InstrumentKind.HISTOGRAM,
    InstrumentKind.GAUGE,
)

# --- requests ----------------------------------------------------------------------------

HTTP_REQUESTS: Final = _definition(
    "crm.http.requests",
    _C,
    "{request}",
    "Django requests served, by method, route template and status code.",
    ("method", "path", "status"),
    "http_requests_total",
)
HTTP_REQUEST_DURATION: Final = _definition(
    "crm.http.request.duration",
    _H,
    "ms",
    "Time Django took to produce the response, in milliseconds.",
    ("method", "path", "status"),
    "http_request_duration_ms",
)
HTTP_ERRORS: Final = _definition(
    "crm.http.errors",
    _C,
    "{request}",
    "Requests answered with a 5xx status.",
    ("method", "path", "status"),
    "http_errors_total",
)

# --- workflows (from `workflow.execute` spans) ---------------------------------------------

WORKFLOW_RUNS: Final = _definition(
    "crm.workflow.runs",
    _C,
    "{run}",
    "Workflow runs, by workflow name and outcome (completed, failed).",
    ("workflow", "status"),
    "workflow_runs_total",
)
WORKFLOW_DURATION: Final = _definition(
    "crm.workflow.duration",
    _H,
    "ms",
    "Duration of a workflow run, in milliseconds.",
    ("workflow",),
    "workflow_duration_ms",
)
WORKFLOW_ACTION_FAILURES: Final = _definition(
    "crm.workflow.action_failures",
    _C,
    "{failure}",
    "Workflow actions that completed with status failure, by action type.",
    ("action_type",),
    "workflow_action_failures_total",
)

# --- search (from `search.query` spans) ----------------------------------------------------

SEARCH_QUERY_LATENCY: Final = _definition(
    "crm.search.latency",
    _H,
    "ms",
    "Latency of a search, in milliseconds, by search type.",
    ("type",),
    "search_query_latency_ms",
)
SEARCH_RESULTS: Final = _definition(
    "crm.search.results",
    _C,
    "{result}",
    "Results returned by searches (the sum of each search's result count), by search type.",
    ("type",),
    "search_results_total",
)
SEARCH_CACHE_HIT_RATE: Final = _definition(
    "crm.search.cache.hit_rate",
    _G,
    "1",
    "Share of searches answered from the cache since start (0 to 1), by search type; "
    "computed at scrape time from `search_cache_lookups_total`.",
    ("type",),
    "search_cache_hit_rate",
)
SEARCH_CACHE_LOOKUPS: Final = _definition(
    "crm.search.cache.lookups",
    _C,
    "{lookup}",
    "Searches by search type and cache result (hit, miss): the input of the hit rate.",
    ("type", "result"),
    "search_cache_lookups_total",
)

# --- WebSocket (helpers for the app's consumers) ---------------------------------------------

WEBSOCKET_ACTIVE_CONNECTIONS: Final = _definition(
    "crm.websocket.active_connections",
    _U,
    "{connection}",
    "WebSocket connections open right now.",
    (),
    "websocket_active_connections_gauge",
)
WEBSOCKET_MESSAGES_SENT: Final = _definition(
    "crm.websocket.messages_sent",
    _C,
    "{message}",
    "WebSocket messages sent to clients.",
    (),
    "websocket_messages_sent_total",
)
WEBSOCKET_CONNECTION_DURATION: Final = _definition(
    "crm.websocket.connection.duration",
    _H,
    "s",
    "How long a WebSocket connection stayed open, in seconds.",
    (),
    "websocket_connection_duration_seconds",
)

# --- lead scoring (from `lead_score.calculate` spans) -------------------------------------------

LEAD_SCORE_CALCULATION_DURATION: Final = _definition(
    "crm.lead_score.duration",
    _H,
    "ms",
    "Duration of a lead score calculation (cached answers included), in milliseconds.",
    (),
    "lead_score_calculation_duration_ms",
)
LEAD_SCORE_CACHE_HIT_RATE: Final = _definition(
    "crm.lead_score.cache.hit_rate",
    _G,
    "1",
    "Share of lead score calculations answered from the cache since start (0 to 1); "
    "computed at scrape time from `lead_score_cache_lookups_total`.",
    (),
    "lead_score_cache_hit_rate",
)
LEAD_SCORE_CACHE_LOOKUPS: Final = _definition(
    "crm.lead_score.cache.lookups",
    _C,
    "{lookup}",
    "Lead score calculations by cache result (hit, miss): the input of the hit rate.",
    ("result",),
    "lead_score_cache_lookups_total",
)
LEAD_SCORE_RECALCULATIONS: Final = _definition(
    "crm.lead_score.recalculations",
    _C,
    "{calculation}",
    "Lead score calculations that replaced a score computed earlier.",
    (),
    "lead_score_recalculations_total",
)

# --- database ------------------------------------------------------------------------------

DB_CONNECTIONS_ACTIVE: Final = _definition(
    "crm.db.connections.active",
    _U,
    "{connection}",
    "Database connections Django holds right now: open, or checked out of its pool.",
    (),
    "db_connections_active_gauge",
)
DB_QUERY_DURATION: Final = _definition(
    "crm.db.query.duration",
    _H,
    "ms",
    "Duration of a database query run through Django, in milliseconds, by query type.",
    ("query_type",),
    "db_query_duration_ms",
)
DB_ERRORS: Final = _definition(
    "crm.db.errors",
    _C,
    "{error}",
    "Database errors (failed queries and failed connections), by error type.",
    ("error_type",),
    "db_errors_total",
)
DB_POOL_EXHAUSTED: Final = _definition(
    "crm.db.pool_exhausted",
    _C,
    "{event}",
    "Connections refused for lack of a slot: none left on the server, or none free in time "
    "in Django's pool.",
    (),
    "db_pool_exhausted_total",
)

# --- cache (Redis) ---------------------------------------------------------------------------

CACHE_HIT_RATE: Final = _definition(
    "crm.cache.hit_rate",
    _G,
    "1",
    "Share of Redis lookups that found their key since start (0 to 1); computed at scrape "
    "time from `cache_operations_total`.",
    (),
    "cache_hit_rate_gauge",
)
CACHE_OPERATIONS: Final = _definition(
    "crm.cache.operations",
    _C,
    "{operation}",
    "Redis commands on the app's configured caches (Django's `CACHES`) issued inside a "
    "request or task by the cache framework or app code, never by Celery's broker or result "
    "backend, by command and status (hit or miss for lookups, ok otherwise).",
    ("operation", "status"),
    "cache_operations_total",
)
CACHE_EVICTIONS: Final = _definition(
    "crm.cache.evictions",
    _C,
    "{key}",
    "Keys the Redis server evicted since it started (`evicted_keys` of `INFO stats`).",
    (),
    "cache_evictions_total",
)

# --- Celery ----------------------------------------------------------------------------------

CELERY_TASKS: Final = _definition(
    "crm.celery.tasks",
    _C,
    "{task}",
    "Celery tasks run, by task name and final state.",
    ("task", "status"),
    "celery_tasks_total",
)
CELERY_TASK_DURATION: Final = _definition(
    "crm.celery.task.duration",
    _H,
    "s",
    "Run time of a Celery task, in seconds, by task name.",
    ("task",),
    "celery_task_duration_seconds",
)
CELERY_QUEUE_LENGTH: Final = _definition(
    "crm.celery.queue.length",
    _G,
    "{message}",
    "Messages waiting in a broker queue, read from the broker (Redis LLEN).",
    ("queue",),
    "celery_queue_length_gauge",
)

# --- process -----------------------------------------------------------------------------------

PROCESS_RESIDENT_MEMORY: Final = _definition(
    "crm.process.memory.rss",
    _G,
    "By",
    "Resident memory of the processes behind this endpoint, in bytes (summed over live ones).",
    (),
    "process_resident_memory_bytes",
)
PROCESS_CPU_TIME: Final = _definition(
    "crm.process.cpu.time",
    _C,
    "s",
    "CPU time (user and system) used by the processes behind this endpoint, in seconds.",
    (),
    "process_cpu_seconds_total",
)

# --- crm-otel's own ----------------------------------------------------------------------------

METRICS_LABEL_OVERFLOW: Final = _definition(
    "crm_otel.metrics.label_overflow",
    _C,
    "{value}",
    "Label values replaced by `other` because their label reached its cap of distinct values.",
    ("label",),
    "crm_otel_metrics_label_overflow_total",
)
EXPORT_DROPPED: Final = _definition(
    "crm_otel.export.dropped",
    _C,
    "{item}",
    "Spans, log records and metric points dropped because their exporter failed, by signal "
    "(traces, logs, metrics).",
    ("signal",),
    "crm_otel_export_dropped_total",
)
EXPORT_ITEMS: Final = _definition(
    "crm_otel.export.items",
    _C,
    "{item}",
    "Spans, log records and metric points handed to their exporter, by signal; those whose "
    "export failed are also in crm_otel_export_dropped_total.",
    ("signal",),
    "crm_otel_export_items_total",
)
METRICS_EXEMPLARS_DROPPED: Final = _definition(
    "crm_otel.metrics.exemplars_dropped",
    _C,
    "{candidate}",
    "Exemplar candidates discarded by a cap (undecided traces, buckets per trace) before "
    "their trace was decided.",
    (),
    "crm_otel_metrics_exemplars_dropped_total",
)


# --- cost by tenant (org) ------------------------------------------------------------------

TENANT_REQUESTS: Final = _definition(
    "crm.tenant.requests",
    _C,
    "{request}",
    "Django requests served, by org (the top orgs by busy time; the rest are `other`).",
    ("org",),
    "tenant_requests_total",
)
TENANT_REQUEST_TIME: Final = _definition(
    "crm.tenant.request.time",
    _C,
    "s",
    "Time Django took to produce responses, in seconds, by org.",
    ("org",),
    "tenant_request_seconds_total",
)
TENANT_DB_TIME: Final = _definition(
    "crm.tenant.db.time",
    _C,
    "s",
    "Time spent in database queries, in seconds, by org.",
    ("org",),
    "tenant_db_seconds_total",
)
TENANT_DB_QUERIES: Final = _definition(
    "crm.tenant.db.queries",
    _C,
    "{query}",
    "Database queries run, by org.",
    ("org",),
    "tenant_db_queries_total",
)
TENANT_TASKS: Final = _definition(
    "crm.tenant.tasks",
    _C,
    "{task}",
    "Celery tasks run, by the org of the request or task that sent them.",
    ("org",),
    "tenant_tasks_total",
)
TENANT_TASK_TIME: Final = _definition(
    "crm.tenant.task.time",
    _C,
    "s",
    "Run time of Celery tasks, in seconds, by org.",
    ("org",),
    "tenant_task_seconds_total",
)
TENANT_SPANS_RECORDED: Final = _definition(
    "crm.tenant.spans.recorded",
    _C,
    "{span}",
    "Spans recorded (before sampling), by org.",
    ("org",),
    "tenant_spans_recorded_total",
)
TENANT_SPANS_KEPT: Final = _definition(
    "crm.tenant.spans.kept",
    _C,
    "{span}",
    "Spans kept by sampling and handed to the exporter, by org.",
    ("org",),
    "tenant_spans_kept_total",
)
TENANT_LOG_LINES: Final = _definition(
    "crm.tenant.log.lines",
    _C,
    "{line}",
    "JSON log lines written to standard output, by org.",
    ("org",),
    "tenant_log_lines_total",
)
TENANT_TELEMETRY_BYTES: Final = _definition(
    "crm.tenant.telemetry.size",
    _C,
    "By",
    "Approximate bytes of telemetry sent on, by org and signal (traces: kept spans, "
    "estimated OTLP size; logs: JSON lines written).",
    ("org", "signal"),
    "tenant_telemetry_bytes_total",
)

TENANT_FAMILIES: Final[tuple[MetricDefinition, ...]] = (
    TENANT_REQUESTS,
    TENANT_REQUEST_TIME,
    TENANT_DB_TIME,
    TENANT_DB_QUERIES,
    TENANT_TASKS,
    TENANT_TASK_TIME,
    TENANT_SPANS_RECORDED,
    TENANT_SPANS_KEPT,
    TENANT_LOG_LINES,
    TENANT_TELEMETRY_BYTES,
)
"""The cost-by-org families: their `org` label names the top orgs by busy time."""

TENANT_NONE: Final = "none"
"""The `org` label of work with no org (anonymous requests, broker polling, startup)."""


def create_http_requests(meter: Meter) -> Any:
    """Counter of Django requests."""
    return HTTP_REQUESTS.create(meter)


def create_http_request_duration(meter: Meter) -> Any:
    """Histogram of request durations in ms."""
    return HTTP_REQUEST_DURATION.create(meter)


def create_http_errors(meter: Meter) -> Any:
    """Counter of 5xx responses."""
    return HTTP_ERRORS.create(meter)


def create_workflow_runs(meter: Meter) -> Any:
    """Counter of workflow runs."""
    return WORKFLOW_RUNS.create(meter)


def create_workflow_duration(meter: Meter) -> Any:
    """Histogram of workflow durations in ms."""
    return WORKFLOW_DURATION.create(meter)


def create_workflow_action_failures(meter: Meter) -> Any:
    """Counter of failed workflow actions."""
    return WORKFLOW_ACTION_FAILURES.create(meter)


def create_search_query_latency(meter: Meter) -> Any:
    """Histogram of search latencies in ms."""
    return SEARCH_QUERY_LATENCY.create(meter)


def create_search_results(meter: Meter) -> Any:
    """Counter of search results returned."""
    return SEARCH_RESULTS.create(meter)


def create_search_cache_hit_rate(meter: Meter) -> Any:
    """Gauge of the search cache hit rate."""
    return SEARCH_CACHE_HIT_RATE.create(meter)


def create_search_cache_lookups(meter: Meter) -> Any:
    """Counter of searches by cache result."""
    return SEARCH_CACHE_LOOKUPS.create(meter)


def create_websocket_active_connections(meter: Meter) -> Any:
    """Up-down counter of open WebSocket connections."""
    return WEBSOCKET_ACTIVE_CONNECTIONS.create(meter)


def create_websocket_messages_sent(meter: Meter) -> Any:
    """Counter of WebSocket messages sent."""
    return WEBSOCKET_MESSAGES_SENT.create(meter)


def create_websocket_connection_duration(meter: Meter) -> Any:
    """Histogram of WebSocket connection durations in s."""
    return WEBSOCKET_CONNECTION_DURATION.create(meter)


def create_lead_score_calculation_duration(meter: Meter) -> Any:
    """Histogram of lead score calculation durations in ms."""
    return LEAD_SCORE_CALCULATION_DURATION.create(meter)


def create_lead_score_cache_hit_rate(meter: Meter) -> Any:
    """Gauge of the lead score cache hit rate."""
    return LEAD_SCORE_CACHE_HIT_RATE.create(meter)


def create_lead_score_cache_lookups(meter: Meter) -> Any:
    """Counter of lead score calculations by cache result."""
    return LEAD_SCORE_CACHE_LOOKUPS.create(meter)


def create_lead_score_recalculations(meter: Meter) -> Any:
    """Counter of lead score recalculations."""
    return LEAD_SCORE_RECALCULATIONS.create(meter)


def create_db_connections_active(meter: Meter) -> Any:
    """Up-down counter of open database connections."""
    return DB_CONNECTIONS_ACTIVE.create(meter)


def create_db_query_duration(meter: Meter) -> Any:
    """Histogram of query durations in ms."""
    return DB_QUERY_DURATION.create(meter)


def create_db_errors(meter: Meter) -> Any:
    """Counter of database errors."""
    return DB_ERRORS.create(meter)


def create_db_pool_exhausted(meter: Meter) -> Any:
    """Counter of refused connection attempts."""
    return DB_POOL_EXHAUSTED.create(meter)


def create_cache_hit_rate(meter: Meter) -> Any:
    """Gauge of the Redis hit rate."""
    return CACHE_HIT_RATE.create(meter)


def create_cache_operations(meter: Meter) -> Any:
    """Counter of Redis operations."""
    return CACHE_OPERATIONS.create(meter)


def create_cache_evictions(meter: Meter) -> Any:
    """Counter of keys Redis evicted (record it observably)."""
    return CACHE_EVICTIONS.create(meter)


def create_celery_tasks(meter: Meter) -> Any:
    """Counter of Celery tasks run."""
    return CELERY_TASKS.create(meter)


def create_celery_task_duration(meter: Meter) -> Any:
    """Histogram of Celery task durations in s."""
    return CELERY_TASK_DURATION.create(meter)


def create_celery_queue_length(meter: Meter) -> Any:
    """Gauge of broker queue lengths."""
    return CELERY_QUEUE_LENGTH.create(meter)


def create_process_resident_memory(meter: Meter) -> Any:
    """Gauge of resident memory in bytes."""
    return PROCESS_RESIDENT_MEMORY.create(meter)


def create_process_cpu_time(meter: Meter) -> Any:
    """Counter of CPU seconds used."""
    return PROCESS_CPU_TIME.create(meter)


def create_metrics_label_overflow(meter: Meter) -> Any:
    """Counter of label values replaced by `other`."""
    return METRICS_LABEL_OVERFLOW.create(meter)


def create_export_dropped(meter: Meter, callbacks: Sequence[CallbackT]) -> Any:
    """Observable counter of items dropped by failed exports; `callbacks` report the totals."""
    return EXPORT_DROPPED.create_observable(meter, callbacks)


def create_export_items(meter: Meter, callbacks: Sequence[CallbackT]) -> Any:
    """Observable counter of items handed to exporters; `callbacks` report the totals."""
    return EXPORT_ITEMS.create_observable(meter, callbacks)


def create_tenant_requests(meter: Meter) -> Any:
    """Counter of requests by org."""
    return TENANT_REQUESTS.create(meter)


def create_tenant_request_time(meter: Meter) -> Any:
    """Counter of request seconds by org."""
    return TENANT_REQUEST_TIME.create(meter)


def create_tenant_db_time(meter: Meter) -> Any:
    """Counter of database seconds by org."""
    return TENANT_DB_TIME.create(meter)


def create_tenant_db_queries(meter: Meter) -> Any:
    """Counter of database queries by org."""
    return TENANT_DB_QUERIES.create(meter)


def create_tenant_tasks(meter: Meter) -> Any:
    """Counter of Celery tasks by org."""
    return TENANT_TASKS.create(meter)


def create_tenant_task_time(meter: Meter) -> Any:
    """Counter of Celery task seconds by org."""
    return TENANT_TASK_TIME.create(meter)


def create_tenant_spans_recorded(meter: Meter) -> Any:
    """Counter of spans recorded by org."""
    return TENANT_SPANS_RECORDED.create(meter)


def create_tenant_spans_kept(meter: Meter) -> Any:
    """Counter of spans kept by org."""
    return TENANT_SPANS_KEPT.create(meter)


def create_tenant_log_lines(meter: Meter) -> Any:
    """Counter of log lines by org."""
    return TENANT_LOG_LINES.create(meter)


def create_tenant_telemetry_bytes(meter: Meter) -> Any:
    """Counter of telemetry bytes by org and signal."""
    return TENANT_TELEMETRY_BYTES.create(meter)


def create_metrics_exemplars_dropped(meter: Meter, callbacks: Sequence[CallbackT]) -> Any:
    """Observable counter of exemplar candidates discarded by a cap."""
    return METRICS_EXEMPLARS_DROPPED.create_observable(meter, callbacks)


CATALOGUE: Final[tuple[MetricDefinition, ...]] = (
    HTTP_REQUESTS,
    HTTP_REQUEST_DURATION,
    HTTP_ERRORS,
    WORKFLOW_RUNS,
    WORKFLOW_DURATION,
    WORKFLOW_ACTION_FAILURES,
    SEARCH_QUERY_LATENCY,
    SEARCH_RESULTS,
    SEARCH_CACHE_HIT_RATE,
    SEARCH_CACHE_LOOKUPS,
    WEBSOCKET_ACTIVE_CONNECTIONS,
    WEBSOCKET_MESSAGES_SENT,
    WEBSOCKET_CONNECTION_DURATION,
    LEAD_SCORE_CALCULATION_DURATION,
    LEAD_SCORE_CACHE_HIT_RATE,
    LEAD_SCORE_CACHE_LOOKUPS,
    LEAD_SCORE_RECALCULATIONS,
    DB_CONNECTIONS_ACTIVE,
    DB_QUERY_DURATION,
    DB_ERRORS,
    DB_POOL_EXHAUSTED,
    CACHE_HIT_RATE,
    CACHE_OPERATIONS,
    CACHE_EVICTIONS,
    CELERY_TASKS,
    CELERY_TASK_DURATION,
    CELERY_QUEUE_LENGTH,
    PROCESS_RESIDENT_MEMORY,
    PROCESS_CPU_TIME,
    METRICS_LABEL_OVERFLOW,
    EXPORT_DROPPED,
    EXPORT_ITEMS,
    METRICS_EXEMPLARS_DROPPED,
    SAMPLING_TRACES,
    SAMPLING_SPANS_BUFFERED,
    SAMPLING_FORCED_DECISIONS,
    SAMPLING_LATE_SPANS,
    SAMPLING_SPANS_DROPPED,
    SAMPLING_HELD_TRACES,
    SAMPLING_SPANS_HELD,
    SAMPLING_UPSTREAM_RELEASED,
    SAMPLING_RELAY_ERRORS,
    *TENANT_FAMILIES,
)
"""Every metric the project records."""

BY_NAME: Final[dict[str, MetricDefinition]] = {d.name: d for d in CATALOGUE}
"""The catalogue by OpenTelemetry name."""

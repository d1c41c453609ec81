"""Every environment variable crm-otel reads: its name, default and meaning.

The registry is a leaf: it imports nothing of crm-otel, and declaring a variable here is
the only way to read it (`EnvReader` looks its default up in `VARIABLES`). `crm-otel check`,
the README table (`python -m crm_otel._doc`) and the settings of each package use it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variable:
    """One environment variable crm-otel reads."""

    name: str
    default: str
    description: str
    secret: bool = False
    standard: bool = False
    """A standard `OTEL_*` variable crm-otel also reads (not listed as crm-otel's own)."""


VARIABLES: dict[str, Variable] = {}
"""Every declared variable, by name, in declaration order."""


def define(
    name: str, default: str, description: str, *, secret: bool = False, standard: bool = False
) -> str:
    """Declare a variable and return its name, for use as a module constant."""
    VARIABLES[name] = Variable(name, default, description, secret, standard)
    return name


# Core: the environment, sampling and tracing (`crm_otel._settings`).

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

# Logs (`crm_otel.logs`).

CRM_OTEL_LOG_JSON = define(
    "CRM_OTEL_LOG_JSON",
    "true",
    "Install crm-otel's JSON handlers (stdout, and the file when set) on the root logger; "
    "`false` leaves the app's logging alone (the OTel logs bridge still follows "
    "`OTEL_LOGS_EXPORTER`).",
)
CRM_OTEL_LOG_LEVEL = define(
    "CRM_OTEL_LOG_LEVEL",
    "INFO",
    "Least severe level crm-otel's handlers write: DEBUG, INFO, WARNING, ERROR or CRITICAL; "
    "also the level of crm-otel's own loggers (`crm.access`, `workflow`) unless the app sets "
    "theirs. No other logger's level is changed: the app's levels decide what is logged.",
)
CRM_OTEL_LOG_FILE = define(
    "CRM_OTEL_LOG_FILE",
    "",
    "Path of a rotating JSON log file written beside stdout; unset writes no file. "
    "`{pid}` in it is replaced by the process id (one file per gunicorn/Celery worker).",
)
CRM_OTEL_LOG_FILE_MAX_BYTES = define(
    "CRM_OTEL_LOG_FILE_MAX_BYTES",
    "10485760",
    "Size in bytes at which the log file is rotated (10 MB); at least 1024.",
)
CRM_OTEL_LOG_FILE_BACKUPS = define(
    "CRM_OTEL_LOG_FILE_BACKUPS",
    "10",
    "Rotated log files kept (`app.log.1` ... `app.log.N`, at least 1: with 0 Python never "
    "rotates); the oldest is deleted.",
)
CRM_OTEL_REDACT_KEYS = define(
    "CRM_OTEL_REDACT_KEYS",
    "",
    "Comma-separated key fragments redacted in addition to the built-in list "
    "(password, passwd, pwd, secret, token, authorization, cookie, api key, session, csrf, "
    "private key, credential); matching ignores case and `_`, `-`, `.` and spaces.",
)
CRM_OTEL_CELERY_LOG_ARGS_TASKS = define(
    "CRM_OTEL_CELERY_LOG_ARGS_TASKS",
    "",
    "Comma-separated Celery task names (`leads.tasks.score_new_lead`) whose arguments and "
    "return value may appear in Celery's task log lines and exception texts; every other "
    "task's are written as `[REDACTED]`.",
)
CRM_OTEL_LOG_OWN_CONSOLE = define(
    "CRM_OTEL_LOG_OWN_CONSOLE",
    "true",
    "With JSON logs on, keep crm-otel's handlers on the root logger after every "
    "`dictConfig`/`fileConfig`/`basicConfig` and Celery logging setup, and print each "
    "record once as JSON (the app's console handlers detached or given the JSON "
    "formatter); `false` patches nothing: put crm-otel's handlers in your `LOGGING` "
    "(`crm_otel.logs.django_logging()`).",
)

# Metrics (`crm_otel.metrics`).

CRM_OTEL_METRICS_ENABLED = define(
    "CRM_OTEL_METRICS_ENABLED",
    "true",
    "Record crm-otel's metrics and answer the metrics path; `false` records nothing "
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

# Standard variables the tail processor's export queue reads (`crm_otel._settings`).

OTEL_BSP_SCHEDULE_DELAY = define(
    "OTEL_BSP_SCHEDULE_DELAY",
    "5000",
    "Milliseconds between exports of kept spans (the SDK's meaning, for the tail's queue).",
    standard=True,
)
OTEL_BSP_MAX_EXPORT_BATCH_SIZE = define(
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "512",
    "Kept spans per export call (the SDK's meaning, for the tail's queue).",
    standard=True,
)

"""Soak: the example CRM for minutes under mixed load while its OTLP endpoint flaps.

The CRM runs as it would in production: `gunicorn -w 4 --max-requests N` and a prefork
Celery worker with `--max-tasks-per-child`, on real PostgreSQL and Redis, scraped every
second by a real Prometheus, exporting traces, logs and metrics over OTLP/HTTP to a local
receiver that cycles through four phases (30 s each by default):

- healthy: answers at once;
- refusing: the port is closed (connection refused) for half the phase, then every
  request gets a 503;
- silent: reads the request and never answers;
- slow: answers after 5 s.

A bounded load generator (loopback only, at most `rate * duration` requests, stops by
itself) sends lists, details, creates (each sends a Celery task), workflow runs, 1%
errors and 1% slow requests. At the end the receiver turns healthy, the CRM is stopped
gracefully, and the run reports per process kind (web, celery):

- RSS over time, and its slope after the warm-up;
- spans, log records and metric points handed to the exporters
  (`crm_otel_export_items_total`) against those the receiver acknowledged plus those
  counted dropped (`crm_otel_export_dropped_total`): they must be equal;
- every error and slow request's trace received whole, unless spans were counted dropped;
- `http_requests_total` (from Prometheus) against the responses the load got;
- p99 latency of the ordinary requests during each receiver phase against healthy.

    python benchmarks/soak.py                      # 10 minutes
    python benchmarks/soak.py --duration 60 --phase 12 --workers 2 --json soak.json

Exit status 0 when everything reconciles. The counts come from the processes' metrics
state files once every process has exited, read with crm-otel's own merge.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import http.client
import json
import os
import random
import select
import socket
import statistics
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests._prometheus import PrometheusServer  # noqa: E402
from tests.blackbox._harness import (  # noqa: E402
    CrmProcess,
    crm_env,
    free_port,
    reset_database,
    reset_redis,
    start_web,
    start_worker,
)

PHASES = ("healthy", "refusing", "silent", "slow")
SIGNALS = ("traces", "logs", "metrics")
KINDS = ("web", "celery")
KIND_ATTRIBUTE = "soak.kind"
"""Resource attribute telling the receiver which kind of process sent a batch."""
EXPORT_TIMEOUT_S = 10
"""`OTEL_EXPORTER_OTLP_TIMEOUT` (the SDK's default). With the exporter's retry schedule
(1, 2, 4 s, jittered 20%) no attempt starts with about 5 s left, so a slow answer never
races the exporter's own timeout: each batch is either acknowledged or counted dropped."""
SLOW_THRESHOLD_MS = 2000
MIX = (
    ("list", 38),
    ("detail", 30),
    ("create", 15),
    ("workflow", 14),
    ("error", 1),
    ("slow", 1),
    ("search", 1),
)
"""Request kinds and their weights (per hundred)."""
KEPT_KINDS = ("error", "slow")
ORDINARY = ("list", "detail", "create", "workflow", "search")


@dataclass(frozen=True)
class Config:
    """What one soak run does."""

    duration_s: float = 600.0
    phase_s: float = 30.0
    slow_reply_s: float = 5.0
    workers: int = 4
    concurrency: int = 2
    max_requests: int = 300
    max_tasks_per_child: int = 20
    rate: float = 12.0
    clients: int = 4
    warmup_s: float = 60.0
    seed: int = 14


# --- the flapping receiver -------------------------------------------------------------------


def _peer_closed(connection: socket.socket) -> bool:
    """Whether the client hung up (it timed out); it sends nothing else on HTTP/1.0."""
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        if not readable:
            return False
        return connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def _decode(path: str, body: bytes) -> tuple[str, dict[str, int], list[dict[str, Any]]]:
    """The signal of an OTLP request, its item count per process kind, and its spans."""
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    def kind_of(resource: Any) -> str:
        for kv in resource.attributes:
            if kv.key == KIND_ATTRIBUTE:
                return str(kv.value.string_value)
        return "unknown"

    counts: Counter[str] = Counter()
    spans: list[dict[str, Any]] = []
    if path.endswith("/v1/traces"):
        traces = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        for rs in traces.resource_spans:
            kind = kind_of(rs.resource)
            for ss in rs.scope_spans:
                counts[kind] += len(ss.spans)
                for span in ss.spans:
                    correlation = ""
                    for kv in span.attributes:
                        if kv.key == "crm.correlation_id":
                            correlation = kv.value.string_value
                    spans.append(
                        {
                            "kind": kind,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent": span.parent_span_id.hex(),
                            "span_kind": span.kind,
                            "correlation_id": correlation,
                        }
                    )
        return "traces", dict(counts), spans
    if path.endswith("/v1/logs"):
        logs = logs_service_pb2.ExportLogsServiceRequest.FromString(body)
        for rl in logs.resource_logs:
            kind = kind_of(rl.resource)
            for sl in rl.scope_logs:
                counts[kind] += len(sl.log_records)
        return "logs", dict(counts), spans
    metrics = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
    for rm in metrics.resource_metrics:
        kind = kind_of(rm.resource)
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                data = metric.WhichOneof("data")
                if data is not None:
                    counts[kind] += len(getattr(metric, data).data_points)
    return "metrics", dict(counts), spans


class FlappingReceiver:
    """An OTLP/HTTP receiver that cycles healthy, refusing, silent and slow.

    Only batches it acknowledged (a 200 written to a client still waiting) are counted as
    received: a refused, unanswered or abandoned batch is one the exporter counts dropped.
    """

    def __init__(self, phase_s: float, slow_reply_s: float = 5.0) -> None:
        self.phase_s = phase_s
        self.slow_reply_s = slow_reply_s
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.received: dict[str, Counter[str]] = {s: Counter() for s in SIGNALS}
        self.spans: list[dict[str, Any]] = []
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._forced: str | None = None
        self._server: ThreadingHTTPServer | None = None
        self._stop = threading.Event()
        self._open()
        self._flapper = threading.Thread(target=self._flap, name="soak-flapper", daemon=True)
        self._flapper.start()

    def phase(self) -> str:
        """The phase right now."""
        if self._forced is not None:
            return self._forced
        return PHASES[int((time.monotonic() - self._t0) / self.phase_s) % len(PHASES)]

    def force(self, phase: str | None) -> None:
        """Stay in `phase` from now on (None: flap again)."""
        self._forced = phase

    def _closed_now(self) -> bool:
        into = (time.monotonic() - self._t0) % self.phase_s
        return self.phase() == "refusing" and into < self.phase_s / 2

    def _flap(self) -> None:
        while not self._stop.wait(0.05):
            closed = self._closed_now()
            if closed and self._server is not None:
                self._close_listener()
            elif not closed and self._server is None:
                with contextlib.suppress(OSError):  # the port is taken for a moment
                    self._open()

    def _open(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver._handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="soak-receiver", daemon=True).start()
        self._server = server

    def _close_listener(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def _note(self, phase: str, outcome: str) -> None:
        with self._lock:
            self.outcomes[(phase, outcome)] += 1

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        phase = self.phase()
        body = request.rfile.read(int(request.headers.get("Content-Length", "0")))
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        connection = request.connection
        if phase == "refusing":
            request.send_response(503)
            request.send_header("Content-Length", "0")
            request.end_headers()
            self._note(phase, "503")
            return
        if phase in ("silent", "slow"):
            wait = 600.0 if phase == "silent" else self.slow_reply_s
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if _peer_closed(connection):
                    self._note(phase, "abandoned")
                    return
                time.sleep(0.05)
            if phase == "silent":
                self._note(phase, "never answered")
                return
        if _peer_closed(connection):
            self._note(phase, "abandoned")
            return
        signal, counts, spans = _decode(request.path, body)
        try:
            request.send_response(200)
            request.send_header("Content-Type", "application/x-protobuf")
            request.send_header("Content-Length", "0")
            request.end_headers()
            request.wfile.flush()
        except OSError:
            self._note(phase, "abandoned")
            return
        with self._lock:
            self.received[signal].update(counts)
            self.spans.extend(spans)
            self.outcomes[(phase, "200")] += 1

    def close(self) -> None:
        self._stop.set()
        self._flapper.join(5)
        self._close_listener()


# --- the load -------------------------------------------------------------------------------


@dataclass
class Sent:
    """One request of the load and what came back."""

    kind: str
    correlation_id: str
    phase: str
    started: float
    latency_s: float = 0.0
    status: int = 0
    error: str = ""


class Load:
    """A bounded, paced stream of mixed requests to one loopback URL."""

    def __init__(self, url: str, config: Config, phase_of: Any) -> None:
        host, port = url.removeprefix("http://").split(":")
        if host != "127.0.0.1":
            raise ValueError(f"url: expected a loopback address, got {url!r}")
        self._host, self._port = host, int(port)
        self._config = config
        self._phase_of = phase_of
        self.limit = int(config.rate * config.duration_s)
        self.sent: list[Sent] = []
        self._lock = threading.Lock()
        self._next = 0
        self._lead_ids: list[int] = []
        self._rng = random.Random(config.seed)
        kinds, weights = zip(*MIX, strict=True)
        self._kinds = list(kinds)
        self._weights = list(weights)

    def _ticket(self) -> tuple[int, str] | None:
        with self._lock:
            if self._next >= self.limit:
                return None
            number = self._next
            self._next += 1
            kind = self._rng.choices(self._kinds, self._weights)[0]
            if kind == "detail" and not self._lead_ids:
                kind = "create"
            return number, kind

    def _request(self, kind: str) -> tuple[str, str, bytes | None]:
        if kind == "list":
            return "GET", "/api/v1/leads/", None
        if kind == "detail":
            with self._lock:
                lead = self._rng.choice(self._lead_ids)
            return "GET", f"/api/v1/leads/{lead}/", None
        if kind == "create":
            body = json.dumps({"name": "Soak", "email": "soak@example.com", "company": "S"})
            return "POST", "/api/v1/leads/", body.encode()
        if kind == "workflow":
            return "POST", "/api/v1/workflows/1/execute/", b""
        if kind == "search":
            return "GET", "/api/v1/search/?q=so", None
        if kind == "error":
            return "GET", "/api/v1/boom/", None
        return "GET", f"/api/v1/slow/?ms={SLOW_THRESHOLD_MS + 300}", None

    def _client(self, t0: float, deadline: float) -> None:
        while time.monotonic() < deadline:
            ticket = self._ticket()
            if ticket is None:
                return
            number, kind = ticket
            due = t0 + number / self._config.rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            if time.monotonic() >= deadline:
                return
            method, path, body = self._request(kind)
            sent = Sent(kind, f"soak-{number}-{kind}", self._phase_of(), time.time())
            started = time.monotonic()
            connection = http.client.HTTPConnection(self._host, self._port, timeout=60)
            try:
                headers = {"X-Correlation-ID": sent.correlation_id}
                if body is not None:
                    headers["Content-Type"] = "application/json"
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
                sent.status = response.status
                if kind == "create" and response.status == 201:
                    with self._lock:
                        self._lead_ids.append(int(json.loads(payload)["id"]))
            except (OSError, http.client.HTTPException) as exc:
                sent.error = f"{type(exc).__name__}: {exc}"
            finally:
                connection.close()
            sent.latency_s = time.monotonic() - started
            with self._lock:
                self.sent.append(sent)

    def run(self) -> None:
        """Send until the count or the duration is reached; returns when all clients did."""
        t0 = time.monotonic()
        deadline = t0 + self._config.duration_s
        clients = [
            threading.Thread(target=self._client, args=(t0, deadline), name=f"soak-client-{i}")
            for i in range(self._config.clients)
        ]
        for client in clients:
            client.start()
        for client in clients:
            client.join()


# --- memory -----------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class MemorySampler:
    """RSS of each process kind's processes, every `interval_s`."""

    def __init__(self, roots: dict[str, int], interval_s: float = 2.0) -> None:
        self._roots = roots
        self._interval_s = interval_s
        self.samples: list[tuple[float, str, int, int]] = []
        """(seconds since start, process kind, pid, RSS in kB)."""
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="soak-rss", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            now = time.monotonic() - self._t0
            for name, root in self._roots.items():
                for kind, pids in ((f"{name} main", [root]), (f"{name} child", _children(root))):
                    for pid in pids:
                        rss = _rss_kb(pid)
                        if rss is not None:
                            self.samples.append((now, kind, pid, rss))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def slope_mb_per_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) points, in MB per minute."""
    if len(points) < 3:
        return 0.0
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    if var == 0:
        return 0.0
    return 60 * sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var


def memory_report(samples: list[tuple[float, str, int, int]], warmup_s: float) -> dict[str, Any]:
    """Per process kind: mean RSS per process at each sample time, first/last/max, and the
    slope of that mean after the warm-up."""
    by_time: dict[str, dict[float, list[int]]] = defaultdict(lambda: defaultdict(list))
    for t, kind, _pid, rss in samples:
        by_time[kind][t].append(rss)
    report = {}
    for kind, series in sorted(by_time.items()):
        points = [(t, statistics.fmean(v) / 1024) for t, v in sorted(series.items())]
        after = [p for p in points if p[0] >= warmup_s] or points
        report[kind] = {
            "processes_seen": len({pid for _t, k, pid, _r in samples if k == kind}),
            "first_mb": round(points[0][1], 1),
            "last_mb": round(points[-1][1], 1),
            "max_mb": round(max(p[1] for p in points), 1),
            "slope_mb_per_min": round(slope_mb_per_min(after), 3),
        }
    return report


# --- the counts at the end ---------------------------------------------------------------------


def final_families(directory: str) -> tuple[dict[str, Any], list[str]]:
    """Every family of the group in `directory` (its processes all exited), merged by
    crm-otel's own code, and the problems the merge met (unreadable files)."""
    from crm_otel.metrics._store import GroupStore

    groups = [d for d in os.listdir(directory) if os.path.isdir(os.path.join(directory, d))]
    if len(groups) != 1:
        raise AssertionError(f"{directory}: expected one metrics group, found {groups}")
    result = GroupStore(os.path.join(directory, groups[0])).collect()
    return result.families, result.problems


def family_total(families: dict[str, Any], name: str, **labels: str) -> float:
    """The sum of a counter family's series whose labels include `labels`."""
    total = 0.0
    for key, value in families.get(name, {}).items():
        present = dict(key)
        if all(present.get(k) == v for k, v in labels.items()):
            total += float(value)
    return total


def percentile(values: list[float], q: float) -> float:
    """The `q` quantile (0..1) by nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))]


@dataclass
class Result:
    """What a soak measured; `failures` is empty when everything reconciled."""

    config: dict[str, Any]
    requests: dict[str, int] = field(default_factory=dict)
    reconciliation: list[dict[str, Any]] = field(default_factory=list)
    kept_traces: dict[str, Any] = field(default_factory=dict)
    http_requests_total: dict[str, float] = field(default_factory=dict)
    latency: list[dict[str, Any]] = field(default_factory=list)
    memory: dict[str, Any] = field(default_factory=dict)
    receiver: dict[str, int] = field(default_factory=dict)
    metrics_problems: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    """Where each process kind's output went."""
    failures: list[str] = field(default_factory=list)


def reconcile(
    families: dict[str, dict[str, Any]], receiver: FlappingReceiver
) -> tuple[list[dict[str, Any]], list[str]]:
    """Per process kind and signal: handed == acknowledged + dropped."""
    rows, failures = [], []
    for kind in KINDS:
        for signal in SIGNALS:
            handed = family_total(families[kind], "crm_otel_export_items_total", signal=signal)
            dropped = family_total(families[kind], "crm_otel_export_dropped_total", signal=signal)
            received = receiver.received[signal][kind]
            row = {
                "kind": kind,
                "signal": signal,
                "handed": int(handed),
                "received": int(received),
                "dropped": int(dropped),
                "difference": int(handed - received - dropped),
            }
            if signal == "traces":
                row["queue_full"] = int(
                    family_total(
                        families[kind], "crm_otel_sampling_spans_dropped_total", reason="queue_full"
                    )
                )
            rows.append(row)
            if row["difference"] != 0:
                failures.append(
                    f"{kind} {signal}: handed {handed:.0f} != received {received} + "
                    f"dropped {dropped:.0f}"
                )
            if handed == 0:
                failures.append(f"{kind} {signal}: nothing was handed to the exporter")
    return rows, failures


def kept_traces(
    sent: list[Sent], receiver: FlappingReceiver, spans_dropped: int
) -> tuple[dict[str, Any], list[str]]:
    """Error and slow requests: their traces arrived whole, or spans were counted dropped."""
    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    roots: dict[str, dict[str, Any]] = {}
    for span in receiver.spans:
        by_trace[span["trace_id"]].append(span)
        if span["kind"] == "web" and span["span_kind"] == 2 and span["correlation_id"]:
            roots[span["correlation_id"]] = span
    shapes: dict[str, Counter[int]] = defaultdict(Counter)
    found: dict[str, list[dict[str, Any]]] = {}
    for request in sent:
        if request.kind not in KEPT_KINDS or request.status == 0:
            continue
        root = roots.get(request.correlation_id)
        if root is None:
            continue
        web = [s for s in by_trace[root["trace_id"]] if s["kind"] == "web"]
        found[request.correlation_id] = web
        shapes[request.kind][len(web)] += 1
    expected = {kind: counts.most_common(1)[0][0] for kind, counts in shapes.items()}
    whole = missing_traces = missing_spans = 0
    total = 0
    for request in sent:
        if request.kind not in KEPT_KINDS or request.status == 0:
            continue
        total += 1
        spans = found.get(request.correlation_id)
        want = expected.get(request.kind, 2)
        if spans is None:
            missing_traces += 1
            missing_spans += want
            continue
        ids = {s["span_id"] for s in spans}
        orphans = [s for s in spans if s["parent"] and s["parent"] not in ids]
        if len(spans) >= want and not orphans:
            whole += 1
        else:
            missing_spans += max(want - len(spans), len(orphans), 1)
    report = {
        "requests": total,
        "whole": whole,
        "missing_traces": missing_traces,
        "spans_missing_at_most": missing_spans,
        "web_spans_counted_dropped": spans_dropped,
        "expected_spans": expected,
    }
    failures = []
    if total == 0:
        failures.append("no error or slow request was answered")
    if missing_spans > spans_dropped:
        failures.append(
            f"error/slow traces: {missing_spans} spans missing but only {spans_dropped} "
            "counted dropped"
        )
    return report, failures


def latency_by_phase(sent: list[Sent]) -> list[dict[str, Any]]:
    """p50/p99 of ordinary requests by the receiver phase they started in."""
    rows = []
    healthy = None
    for phase in PHASES:
        values = [
            s.latency_s * 1000
            for s in sent
            if s.phase == phase and s.kind in ORDINARY and s.status and not s.error
        ]
        p99 = percentile(values, 0.99)
        if phase == "healthy":
            healthy = p99
        rows.append(
            {
                "phase": phase,
                "requests": len(values),
                "p50_ms": round(percentile(values, 0.5), 1),
                "p99_ms": round(p99, 1),
                "p99_vs_healthy": round(p99 / healthy, 2) if healthy else None,
            }
        )
    return rows


# --- the run ----------------------------------------------------------------------------------


def _env(receiver: FlappingReceiver, kind: str, config: Config, **extra: str) -> dict[str, str]:
    return crm_env(
        None,
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_EXPORTER_OTLP_TIMEOUT=str(EXPORT_TIMEOUT_S),
        OTEL_METRICS_EXPORTER="otlp",
        OTEL_LOGS_EXPORTER="otlp",
        OTEL_METRIC_EXPORT_INTERVAL="5000",
        OTEL_RESOURCE_ATTRIBUTES=f"{KIND_ATTRIBUTE}={kind}",
        CRM_OTEL_ENVIRONMENT="production",
        CRM_OTEL_SLOW_THRESHOLD_MS=str(SLOW_THRESHOLD_MS),
        CRM_OTEL_LOG_LEVEL="INFO",
        **extra,
    )


def run(config: Config, say: Any = print) -> Result:
    """One soak run; the processes are always stopped, whatever fails."""
    result = Result(config=asdict(config))
    reset_database()
    reset_redis()
    receiver = FlappingReceiver(config.phase_s, config.slow_reply_s)
    receiver.force("healthy")  # until the load starts: startup is not what is measured
    celery_port = free_port()
    # A worker leaving during an outage spends up to the export timeout per signal on its
    # last exports: gunicorn must not kill it for that (that is the SIGKILL test's case).
    gunicorn_args = (
        f"--max-requests {config.max_requests} "
        f"--max-requests-jitter {max(1, config.max_requests // 5)} --timeout 120"
    )
    web_env = _env(receiver, "web", config, GUNICORN_CMD_ARGS=gunicorn_args)
    celery_env = _env(receiver, "celery", config, CRM_OTEL_METRICS_PORT=str(celery_port))
    processes: list[CrmProcess] = []
    prometheus: PrometheusServer | None = None
    try:
        web = start_web(
            web_env, server="gunicorn", workers=config.workers, timeout=90, graceful_timeout=60
        )
        processes.append(web)
        worker = start_worker(
            celery_env,
            concurrency=config.concurrency,
            max_tasks_per_child=config.max_tasks_per_child,
        )
        processes.append(worker)
        result.outputs = {"web": web._log.name, "celery": worker._log.name}
        web_target = web.url.removeprefix("http://")
        prometheus = PrometheusServer([web_target, f"127.0.0.1:{celery_port}"]).start()
        memory = MemorySampler({"web": web.process.pid, "celery": worker.process.pid})
        load = Load(web.url, config, receiver.phase)
        say(
            f"soak: {config.duration_s:.0f} s, phases of {config.phase_s:.0f} s, "
            f"up to {load.limit} requests"
        )
        receiver.force(None)
        receiver._t0 = time.monotonic()
        load.run()
        receiver.force("healthy")
        memory.stop()
        say("soak: load done; draining with the receiver healthy")
        # Retries and silent batches end within the export timeout; then one more
        # export round of each signal, and a few scrapes.
        time.sleep(EXPORT_TIMEOUT_S + 8)
        served = sum(1 for s in load.sent if s.status)
        http_total = _prometheus_total(prometheus, 'sum(http_requests_total{path!="/healthz"})')
        result.http_requests_total = {"prometheus": http_total, "served": served}
        if http_total != served:
            result.failures.append(f"http_requests_total {http_total} != served {served}")
        say("soak: stopping the CRM gracefully")
        for process in reversed(processes):
            code = process.stop(timeout=120)
            if code not in (0, -15):
                result.failures.append(f"{process.args[1]} exited with {code}")
        families: dict[str, dict[str, Any]] = {}
        for kind, env in (("web", web_env), ("celery", celery_env)):
            families[kind], problems = final_families(env["CRM_OTEL_METRICS_DIR"])
            result.metrics_problems += problems
        if result.metrics_problems:
            result.failures.append(f"metrics state problems: {result.metrics_problems}")
        result.reconciliation, failures = reconcile(families, receiver)
        result.failures += failures
        web_dropped = int(
            family_total(families["web"], "crm_otel_export_dropped_total", signal="traces")
            + family_total(
                families["web"], "crm_otel_sampling_spans_dropped_total", reason="queue_full"
            )
        )
        result.kept_traces, failures = kept_traces(load.sent, receiver, web_dropped)
        result.failures += failures
        result.latency = latency_by_phase(load.sent)
        result.memory = memory_report(memory.samples, config.warmup_s)
        by_kind = Counter(s.kind for s in load.sent)
        result.requests = {
            "sent": len(load.sent),
            "answered": served,
            "unanswered": len(load.sent) - served,
            **{f"kind {k}": n for k, n in sorted(by_kind.items())},
            **{
                f"status {k}": n
                for k, n in sorted(Counter(s.status for s in load.sent if s.status).items())
            },
            "web workers recycled": _recycled(web.output()),
        }
        result.receiver = {f"{p} {o}": n for (p, o), n in sorted(receiver.outcomes.items())}
        unexpected = [s for s in load.sent if s.status not in (200, 201, 500)]
        if unexpected:
            result.failures.append(
                f"{len(unexpected)} requests failed or had an unexpected status, e.g. "
                f"{unexpected[0]}"
            )
        return result
    finally:
        for process in processes:
            process.stop(timeout=120)
        if prometheus is not None:
            prometheus.stop()
        receiver.close()


def _recycled(output: str) -> int:
    return output.count("Autorestarting worker")


def _prometheus_total(prometheus: PrometheusServer, promql: str) -> float:
    rows = prometheus.query(promql)
    return float(rows[0]["value"][1]) if rows else 0.0


def render(result: Result) -> str:
    """The result as text tables."""
    lines = ["", "Reconciliation (items handed to exporters = acknowledged + counted dropped)"]
    lines.append(
        f"{'kind':<7}{'signal':<9}{'handed':>9}{'received':>10}{'dropped':>9}"
        f"{'diff':>6}{'queue_full':>12}"
    )
    for row in result.reconciliation:
        lines.append(
            f"{row['kind']:<7}{row['signal']:<9}{row['handed']:>9}{row['received']:>10}"
            f"{row['dropped']:>9}{row['difference']:>6}{row.get('queue_full', ''):>12}"
        )
    lines += ["", "Error and slow traces", json.dumps(result.kept_traces)]
    lines += ["", f"http_requests_total vs served: {json.dumps(result.http_requests_total)}"]
    lines += ["", "Latency of ordinary requests by receiver phase"]
    lines.append(f"{'phase':<10}{'requests':>9}{'p50 ms':>9}{'p99 ms':>9}{'p99/healthy':>13}")
    for row in result.latency:
        lines.append(
            f"{row['phase']:<10}{row['requests']:>9}{row['p50_ms']:>9}{row['p99_ms']:>9}"
            f"{row['p99_vs_healthy'] if row['p99_vs_healthy'] is not None else '':>13}"
        )
    lines += ["", "RSS per process kind (mean per process; slope after the warm-up)"]
    lines.append(
        f"{'kind':<14}{'procs':>6}{'first MB':>10}{'last MB':>9}{'max MB':>8}{'MB/min':>9}"
    )
    for kind, row in result.memory.items():
        lines.append(
            f"{kind:<14}{row['processes_seen']:>6}{row['first_mb']:>10}{row['last_mb']:>9}"
            f"{row['max_mb']:>8}{row['slope_mb_per_min']:>9}"
        )
    lines += ["", f"requests: {json.dumps(result.requests)}"]
    lines += [f"receiver: {json.dumps(result.receiver)}"]
    lines += [f"process output: {json.dumps(result.outputs)}"]
    lines += ["", "FAILURES:" if result.failures else "everything reconciled"]
    lines += [f"  {failure}" for failure in result.failures]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = Config()
    parser.add_argument("--duration", type=float, default=defaults.duration_s, help="seconds")
    parser.add_argument("--phase", type=float, default=defaults.phase_s, help="seconds a phase")
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency)
    parser.add_argument("--max-requests", type=int, default=defaults.max_requests)
    parser.add_argument("--max-tasks-per-child", type=int, default=defaults.max_tasks_per_child)
    parser.add_argument("--rate", type=float, default=defaults.rate, help="requests a second")
    parser.add_argument("--warmup", type=float, default=defaults.warmup_s, help="seconds")
    parser.add_argument("--json", type=Path, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    config = Config(
        duration_s=args.duration,
        phase_s=args.phase,
        workers=args.workers,
        concurrency=args.concurrency,
        max_requests=args.max_requests,
        max_tasks_per_child=args.max_tasks_per_child,
        rate=args.rate,
        warmup_s=min(args.warmup, args.duration / 4),
    )
    result = run(config)
    print(render(result))
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2, default=str))
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())

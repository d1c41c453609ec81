"""Cost per log line of crm-otel's JSON formatter, against baselines measured in the same run.

    python benchmarks/bench_logs.py [--lines N] [--rounds R]

The same records (an INFO line logged inside a span, with a correlation id, a request
context and two `extra` fields, like a CRM view's line) are formatted by:
  (a) a plain `logging.Formatter` with a classic text format;
  (b) bare python-json-logger (`pythonjsonlogger.json.JsonFormatter`, timestamp on);
  (c) crm-otel's `JsonFormatter` (standard fields, trace ids, request context, redaction).
Then (d) the whole path, `logger.info(...)` to a handler writing to a null stream, with
(a) and (c) attached, and (e) (c) for a line whose message carries `key=value` pairs (the
free-text redaction's slow path). Times are the median of R rounds of N lines, in
microseconds per line, CPU time of the process.
"""

from __future__ import annotations

import argparse
import io
import logging
import statistics
import time
from collections.abc import Callable

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from pythonjsonlogger.json import JsonFormatter as BareJsonFormatter

from crm_otel._context import correlation_id_var, request_context_var
from crm_otel.logs import JsonFormatter

CONTEXT = {
    "user_id": "42",
    "org_id": "org-7",
    "method": "POST",
    "path": "/api/v1/leads/",
    "remote_addr": "127.0.0.1",
    "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
}


def _records(count: int, message: str) -> list[logging.LogRecord]:
    logger = logging.getLogger("crm.leads")
    return [
        logger.makeRecord(
            "crm.leads",
            logging.INFO,
            __file__,
            1,
            message,
            (i,),
            None,
            extra={"lead_id": i, "company": "Acme"},
        )
        for i in range(count)
    ]


def _per_line_us(run: Callable[[], None], lines: int, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.process_time()
        run()
        samples.append((time.process_time() - started) / lines * 1e6)
    return statistics.median(samples)


def _timed_format(formatter: logging.Formatter, lines: int, rounds: int, message: str) -> float:
    samples = []
    for _ in range(rounds):
        records = _records(lines, message)
        started = time.process_time()
        for record in records:
            formatter.format(record)
        samples.append((time.process_time() - started) / lines * 1e6)
    return statistics.median(samples)


def _timed_logging(formatter: logging.Formatter, lines: int, rounds: int) -> float:
    logger = logging.getLogger("bench.crm")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(formatter)
    logger.handlers = [handler]

    def run() -> None:
        handler.stream = io.StringIO()
        for i in range(lines):
            logger.info("lead %s created", i, extra={"lead_id": i, "company": "Acme"})

    try:
        return _per_line_us(run, lines, rounds)
    finally:
        logger.handlers = []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    lines, rounds = args.lines, args.rounds

    plain = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    bare = BareJsonFormatter("%(levelname)s %(name)s %(message)s", timestamp=True)
    crm = JsonFormatter(service="crm-backend", environment="production")

    span = NonRecordingSpan(
        SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xF067AA0BA902B7, False, TraceFlags(1))
    )
    correlation = correlation_id_var.set("abc-123")
    request = request_context_var.set(CONTEXT)
    try:
        with trace.use_span(span):
            results = {
                "(a) logging.Formatter": _timed_format(plain, lines, rounds, "lead %s created"),
                "(b) python-json-logger": _timed_format(bare, lines, rounds, "lead %s created"),
                "(c) crm-otel JsonFormatter": _timed_format(crm, lines, rounds, "lead %s created"),
                "(d) logger.info, plain": _timed_logging(plain, lines, rounds),
                "(d) logger.info, crm-otel": _timed_logging(crm, lines, rounds),
                "(e) crm-otel, key=value message": _timed_format(
                    crm, lines, rounds, "lead %s created status=ok owner=ada password=x"
                ),
            }
    finally:
        request_context_var.reset(request)
        correlation_id_var.reset(correlation)

    print(f"{lines} lines x {rounds} rounds, median CPU microseconds per line")
    for name, value in results.items():
        print(f"  {name:<34} {value:8.2f} us")
    a, b, c = (results[k] for k in list(results)[:3])
    print("ratios")
    print(f"  (c)/(a) crm-otel vs logging.Formatter     {c / a:6.2f}x")
    print(f"  (c)/(b) crm-otel vs python-json-logger    {c / b:6.2f}x")
    print(f"  (b)/(a) python-json-logger vs Formatter   {b / a:6.2f}x")
    d_plain, d_crm = results["(d) logger.info, plain"], results["(d) logger.info, crm-otel"]
    print(f"  (d) whole logger.info path, crm-otel/plain {d_crm / d_plain:6.2f}x")
    e = results["(e) crm-otel, key=value message"]
    print(f"  (e)/(c) free-text redaction slow path     {e / c:6.2f}x")


if __name__ == "__main__":
    main()

"""A real Prometheus for tests: scrapes given targets every second and answers PromQL.

Starts the `prometheus` binary (Debian's package installs it at `/usr/bin/prometheus`) on a
free loopback port with a generated configuration and a temporary TSDB, and queries it
over its HTTP API with `urllib`:

    with PrometheusServer(["127.0.0.1:8000"], rule_files=[...]) as prometheus:
        prometheus.wait_until('up{job="crm-backend"}', lambda r: r and r[0]["value"][1] == "1")
        rows = prometheus.query("sum(rate(http_requests_total[1m]))")
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["JOB", "PrometheusError", "PrometheusServer", "find_binary"]

JOB = "crm-backend"
"""The scrape job name every rule and dashboard of `deploy/` selects on."""


class PrometheusError(AssertionError):
    """Prometheus rejected a query (bad syntax gives HTTP 400) or did not start."""


def find_binary(name: str) -> str | None:
    """The path of a Prometheus tool (`prometheus`, `promtool`), or None when not installed."""
    found = shutil.which(name)
    if found:
        return found
    debian = Path("/usr/bin") / name
    return str(debian) if debian.exists() else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(
    targets: Sequence[str],
    metrics_path: str,
    bearer_token: str | None,
    rule_files: Sequence[Path],
    job: str,
    interval: str,
) -> dict[str, Any]:
    scrape: dict[str, Any] = {
        "job_name": job,
        "metrics_path": metrics_path,
        "scrape_interval": interval,
        "scrape_timeout": interval,
        "static_configs": [{"targets": list(targets)}],
    }
    if bearer_token is not None:
        scrape["authorization"] = {"type": "Bearer", "credentials": bearer_token}
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [scrape],
    }


class PrometheusServer:
    """A `prometheus` process scraping `targets` (`host:port`) as job `crm-backend`.

    The configuration is written as JSON, which is valid YAML, so no YAML library is needed.
    Rule files are evaluated every `interval`, so recording rules can be queried too.
    """

    def __init__(
        self,
        targets: Sequence[str] = (),
        *,
        metrics_path: str = "/metrics",
        bearer_token: str | None = None,
        rule_files: Sequence[str | os.PathLike[str]] = (),
        job: str = JOB,
        interval: str = "1s",
        binary: str | None = None,
        start_timeout: float = 30.0,
        flags: Sequence[str] = (),
    ) -> None:
        self.binary = binary or find_binary("prometheus") or "/usr/bin/prometheus"
        self._directory = Path(tempfile.mkdtemp(prefix="crm-otel-prometheus-"))
        self._config_path = self._directory / "prometheus.yml"
        self._config_path.write_text(
            json.dumps(
                _config(
                    targets,
                    metrics_path,
                    bearer_token,
                    [Path(p).resolve() for p in rule_files],
                    job,
                    interval,
                ),
                indent=2,
            )
        )
        self._log_path = self._directory / "prometheus.log"
        self._start_timeout = start_timeout
        self._flags = list(flags)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> PrometheusServer:
        """Start the process and wait until `/-/ready` answers 200; raise if it never does."""
        if not Path(self.binary).exists():
            raise PrometheusError(
                f"prometheus binary not found at {self.binary}; install Debian's `prometheus` "
                "package (apt-get install prometheus)"
            )
        with open(self._log_path, "wb") as log:
            self._process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self._config_path}",
                    f"--storage.tsdb.path={self._directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    # The default 5m would hide a series that stopped being scraped; a
                    # test wants to see staleness quickly, never stale data.
                    "--query.lookback-delta=1m",
                    "--log.level=warn",
                    *self._flags,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + self._start_timeout
        while True:
            if self._process.poll() is not None:
                raise PrometheusError(f"prometheus exited early:\n{self.output()[-4000:]}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(self.url + "/-/ready", timeout=2) as response,
            ):
                if response.status == 200:
                    return self
            if time.monotonic() > deadline:
                self.stop()
                raise PrometheusError(f"prometheus never became ready:\n{self.output()[-4000:]}")
            time.sleep(0.1)

    def output(self) -> str:
        """What the process logged so far (warnings and errors only)."""
        try:
            return self._log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _api(self, path: str, params: dict[str, str]) -> Any:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                payload = json.load(response)
        except urllib.error.HTTPError as error:
            body = error.read().decode(errors="replace")
            raise PrometheusError(f"HTTP {error.code} for {params}: {body}") from None
        if payload.get("status") != "success":
            raise PrometheusError(f"query failed for {params}: {payload}")
        return payload["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Evaluate `promql` now; return the result rows (`metric`, `value`), [] if none.

        A syntax error raises `PrometheusError` (Prometheus answers HTTP 400). A scalar or
        string result comes back as one row with an empty `metric`.
        """
        data = self._api("/api/v1/query", {"query": promql})
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def query_exemplars(self, promql: str, start: float, end: float) -> list[dict[str, Any]]:
        """The exemplars stored for the series of `promql` between `start` and `end` (unix
        seconds): rows of `seriesLabels` and `exemplars` (needs `exemplar-storage`)."""
        params = {"query": promql, "start": str(start), "end": str(end)}
        return list(self._api("/api/v1/query_exemplars", params))

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets with their health and last error."""
        return list(self._api("/api/v1/targets", {"state": "active"})["activeTargets"])

    def rules(self) -> list[dict[str, Any]]:
        """The loaded rule groups, as `/api/v1/rules` reports them."""
        return list(self._api("/api/v1/rules", {})["groups"])

    def wait_until(
        self,
        promql: str,
        predicate: Callable[[list[dict[str, Any]]], Any] = bool,
        timeout: float = 30.0,
    ) -> list[dict[str, Any]]:
        """Query until `predicate(rows)` is truthy and return the rows; fail after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.query(promql)
            if predicate(rows):
                return rows
            if time.monotonic() > deadline:
                targets = [(t["scrapeUrl"], t["health"], t["lastError"]) for t in self.targets()]
                raise AssertionError(
                    f"timed out after {timeout}s waiting on {promql!r}; last result {rows!r}; "
                    f"targets {targets}"
                )
            time.sleep(0.25)

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL) and delete its storage."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        shutil.rmtree(self._directory, ignore_errors=True)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

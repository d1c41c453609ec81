"""An OTLP endpoint that refuses, then recovers: said once, counted, then said recovered."""

from __future__ import annotations

import time

import pytest

from tests.blackbox._harness import (
    OtlpReceiver,
    crm_env,
    free_port,
    get,
    running,
    start_web,
)

pytestmark = pytest.mark.blackbox


def _dropped_spans(url: str) -> float:
    body = get(url + "/metrics")[2].decode()
    for line in body.splitlines():
        if line.startswith("crm_otel_export_dropped_total{") and 'signal="traces"' in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no crm_otel_export_dropped_total{signal=traces} series")


def test_refused_endpoint_is_said_once_then_recovery(crm: None) -> None:
    """Against an endpoint that refuses, the app serves, the failure is one line naming the
    endpoint (no per-retry warnings), dropped spans are counted on /metrics, and when a
    receiver appears the recovery is said once and spans arrive."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = crm_env(
        None,
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_EXPORTER_OTLP_TIMEOUT="2",
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    with running(start_web(env)) as web:
        deadline = time.monotonic() + 30
        while "failed" not in web.output():
            assert time.monotonic() < deadline, web.output()[-3000:]
            assert get(web.url + "/api/v1/leads/")[0] == 200
            time.sleep(0.3)
        for _ in range(10):  # more failing batches: still one line
            assert get(web.url + "/api/v1/leads/")[0] == 200
            time.sleep(0.3)
        time.sleep(3)
        assert _dropped_spans(web.url) > 0
        receiver = OtlpReceiver(port=port)
        try:
            deadline = time.monotonic() + 30
            while "recovered" not in web.output():
                assert time.monotonic() < deadline, web.output()[-3000:]
                get(web.url + "/api/v1/leads/", {"X-Correlation-ID": "after-recovery"})
                time.sleep(0.5)

            def arrived(r: OtlpReceiver) -> bool:
                return any(
                    s["attributes"].get("crm.correlation_id") == "after-recovery" for s in r.spans()
                )

            receiver.wait_for(arrived)
        finally:
            receiver.close()
    output = web.output()
    failures = [
        line for line in output.splitlines() if "traces export to" in line and "failed" in line
    ]
    assert len(failures) == 1, failures
    assert f"{endpoint}/v1/traces" in failures[0]
    assert "Transient error" not in output.replace(failures[0], "")
    assert sum("recovered" in line for line in output.splitlines()) == 1

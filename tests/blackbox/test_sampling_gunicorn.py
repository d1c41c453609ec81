"""Tail sampling end to end: the example CRM under gunicorn -w 2 in production, over OTLP."""

from __future__ import annotations

import random

import pytest

from sampling import threshold_for
from sampling._threshold import RANDOMNESS_MASK
from tests.blackbox._harness import (
    OtlpReceiver,
    crm_env,
    get,
    running,
    seeded_trace_ids,
    start_web,
)

pytestmark = pytest.mark.blackbox

STATUS_ERROR = 2
RATIO = 0.1
THRESHOLD = threshold_for(RATIO)


def _trace_ids(count: int, seed: int, baseline: bool | None = None) -> list[str]:
    return seeded_trace_ids(count, seed, THRESHOLD, baseline)


def _call(url: str, trace_id: str, sampled: bool = False) -> int:
    """One request continuing `trace_id` from an upstream caller; returns the status."""
    flags = "01" if sampled else "00"
    headers = {"traceparent": f"00-{trace_id}-{random.getrandbits(64) or 1:016x}-{flags}"}
    return get(url, headers=headers)[0]


def _complete(receiver: OtlpReceiver, route: str) -> dict[str, dict]:
    """Trace id -> server span, for server spans of `route` whose DB span also arrived."""
    spans = receiver.spans()
    with_db = {
        s["parent_span_id"] for s in spans if s["attributes"].get("db.system") == "postgresql"
    }
    return {
        s["trace_id"]: s for s in spans if s["name"] == f"GET {route}" and s["span_id"] in with_db
    }


def test_gunicorn_keeps_errors_slow_upstream_and_exactly_the_baseline(
    crm: None, receiver: OtlpReceiver
) -> None:
    """Under gunicorn -w 2 in production every failing, slow and upstream-sampled trace
    arrives complete, and of 300 ok requests exactly the baseline ones do."""
    env = crm_env(
        receiver,
        CRM_OTEL_ENVIRONMENT="production",
        CRM_OTEL_SAMPLING_RATIO=str(RATIO),
        CRM_OTEL_SLOW_THRESHOLD_MS="300",
    )
    ok_ids = _trace_ids(300, seed=1)
    # Failing, slow and upstream-sampled traces outside the baseline: only their own
    # rule can keep them.
    boom_ids = _trace_ids(10, seed=2, baseline=False)
    slow_ids = _trace_ids(5, seed=3, baseline=False)
    fast_ids = _trace_ids(5, seed=4, baseline=False)
    upstream_ids = _trace_ids(5, seed=5, baseline=False)
    expected_ok = {t for t in ok_ids if int(t, 16) & RANDOMNESS_MASK >= THRESHOLD}
    assert 10 < len(expected_ok) < 60

    with running(start_web(env, server="gunicorn", workers=2)) as web:
        for trace_id in ok_ids:
            assert _call(web.url + "/api/v1/leads/", trace_id) == 200
        for trace_id in boom_ids:
            assert _call(web.url + "/api/v1/boom/", trace_id) == 500
        for trace_id in slow_ids:
            assert _call(web.url + "/api/v1/slow/?ms=400", trace_id) == 200
        for trace_id in fast_ids:
            assert _call(web.url + "/api/v1/slow/?ms=1", trace_id) == 200
        for trace_id in upstream_ids:
            assert _call(web.url + "/api/v1/leads/", trace_id, sampled=True) == 200

        def all_kept_arrived(r: OtlpReceiver) -> bool:
            leads = _complete(r, "api/v1/leads/")
            return (
                expected_ok | set(upstream_ids) <= leads.keys()
                and set(boom_ids) <= _complete(r, "api/v1/boom/").keys()
                and set(slow_ids) <= _complete(r, "api/v1/slow/").keys()
            )

        receiver.wait_for(all_kept_arrived, timeout=30)

    leads = _complete(receiver, "api/v1/leads/")
    booms = _complete(receiver, "api/v1/boom/")
    slows = _complete(receiver, "api/v1/slow/")
    # Exactly the baseline of the ok requests, plus the upstream-sampled ones.
    assert leads.keys() == expected_ok | set(upstream_ids)
    assert booms.keys() == set(boom_ids)
    assert all(span["status_code"] == STATUS_ERROR for span in booms.values())
    # Slow ones kept, fast calls to the same route dropped.
    assert slows.keys() == set(slow_ids)
    # Nothing of a dropped trace arrives, not even its DB spans.
    arrived = {s["trace_id"] for s in receiver.spans()}
    dropped = (set(ok_ids) - expected_ok) | set(fast_ids)
    assert not arrived & dropped

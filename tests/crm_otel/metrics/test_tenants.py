"""Cost by org: the bounded per-process table, the scrape-time top N, and its ledger."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from crm_otel import _usage
from crm_otel.metrics import _tenants
from crm_otel.metrics._merge import ProcessState, merge
from crm_otel.metrics._store import GroupStore
from crm_otel.metrics._tenant_ledger import Ledger, bound, expose
from crm_otel.metrics._values import Families, Labels
from semconv import metrics

REQ = metrics.TENANT_REQUESTS.prometheus_name
BUSY = metrics.TENANT_REQUEST_TIME.prometheus_name


def _org(labels: Labels) -> str:
    return dict(labels)["org"]


def _request(org: str | None, seconds: float) -> list[float]:
    values = [0.0] * _usage.SLOTS
    values[_usage.REQUESTS], values[_usage.REQUEST_S] = 1.0, seconds
    return values


def _raw(busy: dict[str, float], requests: dict[str, float] | None = None) -> Families:
    requests = requests or {org: 1.0 for org in busy}
    return {
        BUSY: {(("org", o),): v for o, v in busy.items()},
        REQ: {(("org", o),): v for o, v in requests.items()},
    }


def _by_org(families: Families, name: str) -> dict[str, float]:
    return {_org(labels): float(v) for labels, v in families[name].items()}  # type: ignore[arg-type]


def test_table_is_bounded_and_its_sums_are_the_totals() -> None:
    """A table of capacity 10 fed 500 orgs holds 10 of them, and its values (orgs plus
    `other`) sum to exactly what was added."""
    table = _tenants.TenantTable(10)
    rng = random.Random(7)
    for i in range(5000):
        table.add(f"org-{rng.randrange(500)}", _request(None, 0.001 * (i % 7)))
    assert table.size() == 10
    requests = table.snapshot()[REQ]
    assert sum(requests.values()) == 5000  # type: ignore[arg-type]
    assert table.evictions > 0


def test_heavy_orgs_stay_exact_under_space_saving() -> None:
    """With a zipf-like load over 300 orgs and room for 100, the ten heaviest orgs keep
    exact counts (one-off orgs churn in probation), the rest fold into `other`."""
    table = _tenants.TenantTable(100)
    rng = random.Random(3)
    weights = [1 / (rank + 1) for rank in range(300)]
    truth: dict[str, int] = {}
    for org in rng.choices([f"org-{r}" for r in range(300)], weights, k=20_000):
        truth[org] = truth.get(org, 0) + 1
        table.add(org, _request(org, 0.01))
    requests = _by_org(table.snapshot(), REQ)
    for rank in range(10):
        assert requests[f"org-{rank}"] == truth[f"org-{rank}"]
    assert sum(requests.values()) == 20_000


def test_a_flood_of_one_off_orgs_never_displaces_returning_ones() -> None:
    """Five orgs that came back stay tracked, exactly, through 5,000 orgs seen once each."""
    table = _tenants.TenantTable(10)
    for _ in range(3):
        for org in range(5):
            table.add(f"regular-{org}", _request(None, 0.01))
    for org in range(5000):
        table.add(f"once-{org}", _request(None, 0.01))
    requests = _by_org(table.snapshot(), REQ)
    assert all(requests[f"regular-{org}"] == 3 for org in range(5))
    assert requests["other"] == 5000 - 5


def test_first_scrape_names_the_top_n_exactly_and_sums_match() -> None:
    """The first scrape names the N busiest orgs with all their history; `other` holds the
    rest and the sum over org equals the total."""
    busy = {f"o{i}": float(100 - i) for i in range(50)}
    requests = {f"o{i}": float(1000 - i) for i in range(50)}
    families = _raw(busy, requests)
    families[REQ][(("org", "none"),)] = 7.0
    exposed = _by_org(expose(families, Ledger(), 3), REQ)
    assert set(exposed) == {"o0", "o1", "o2", "none", "other"}
    assert exposed["o0"] == 1000 and exposed["o2"] == 998 and exposed["none"] == 7
    assert sum(exposed.values()) == sum(requests.values()) + 7


def test_series_never_go_backwards_as_the_top_n_changes() -> None:
    """Over 200 scrapes of a load whose heavy orgs change, no exposed series ever goes
    down, every scrape sums to the total, and at most 2N orgs are named or frozen."""
    rng = random.Random(11)
    ledger, busy, requests = Ledger(), {}, {}
    previous: dict[str, float] = {}
    for step in range(200):
        for _ in range(50):
            org = f"o{rng.randrange(40) if rng.random() < 0.5 else (step // 20)}"
            busy[org] = busy.get(org, 0.0) + rng.random()
            requests[org] = requests.get(org, 0.0) + 1
        exposed = _by_org(expose(_raw(busy, requests), ledger, 4), REQ)
        assert sum(exposed.values()) == pytest.approx(sum(requests.values()))
        for org, value in exposed.items():
            if org in previous:
                assert value >= previous[org], (step, org)
        assert len(exposed) <= 2 * 4 + 1
        previous = exposed


def test_a_newcomer_takes_only_what_other_gained() -> None:
    """An org that enters the top N after the first scrape starts from what `other` gained
    since then, so `other` does not go down."""
    ledger = Ledger()
    first = _by_org(expose(_raw({"a": 10.0, "b": 1.0}, {"a": 10.0, "b": 5.0}), ledger, 1), REQ)
    assert first == {"a": 10.0, "other": 5.0}
    second = _by_org(expose(_raw({"a": 10.0, "b": 20.0}, {"a": 10.0, "b": 7.0}), ledger, 1), REQ)
    assert second["other"] >= first["other"]
    assert second["b"] == 2.0 and second["a"] == 10.0  # frozen, still shown
    assert sum(second.values()) == 17.0


def test_a_retired_org_moves_to_other_in_one_step_up() -> None:
    """With N=1, a third org to lead retires the org frozen longest: its series ends and
    `other` grows by its value."""
    ledger = Ledger()
    expose(_raw({"a": 3.0}), ledger, 1)
    expose(_raw({"a": 3.0, "b": 5.0}), ledger, 1)
    before = _by_org(expose(_raw({"a": 3.0, "b": 5.0}), ledger, 1), REQ)
    after = _by_org(expose(_raw({"a": 3.0, "b": 5.0, "c": 9.0}), ledger, 1), REQ)
    assert "a" in before and "a" not in after
    assert after["other"] >= before["other"] + before["a"]
    assert sum(after.values()) == 3.0


def test_ledger_survives_json() -> None:
    """The ledger written to `tenants.json` reads back the same."""
    ledger = Ledger()
    expose(_raw({"a": 3.0, "b": 1.0}), ledger, 1)
    assert Ledger.from_json(ledger.to_json()) == ledger


def test_merged_tables_of_two_processes_sum_exactly() -> None:
    """Two processes' tables, merged as state files are, then folded, sum to the total."""
    one, two = _tenants.TenantTable(5), _tenants.TenantTable(5)
    for i in range(100):
        (one if i % 2 else two).add(f"o{i % 17}", _request(None, 0.5))
    merged, problems = merge(
        {}, [ProcessState(1, "a", 0, one.snapshot()), ProcessState(2, "b", 0, two.snapshot())]
    )
    assert problems == []
    exposed = _by_org(expose(merged, Ledger(), 3), REQ)
    assert sum(exposed.values()) == 100 and len(exposed) == 4


def test_archive_is_bounded() -> None:
    """`bound` keeps the busiest orgs of an archive and sums the rest into `other`."""
    folded = _by_org(bound(_raw({f"o{i}": float(i) for i in range(30)}), 5), REQ)
    assert len(folded) == 6 and folded["other"] == 25 and "o29" in folded


def test_usage_of_a_request_goes_to_its_settled_org() -> None:
    """A request's queries and log lines, noted before its org is known, are counted
    under the org it settled on when it ends."""
    table = _tenants.TenantTable(10)
    _tenants.install(table)
    try:
        opened = _tenants.begin()
        _usage.note(_usage.DB_S, 0.25, _usage.DB_QUERIES, 1.0)
        _usage.set_org("acme")
        _tenants.finish(opened, _usage.REQUESTS, 0.5)
        _usage.note(_usage.DB_S, 0.125, _usage.DB_QUERIES, 1.0)  # outside: no org
    finally:
        _tenants.install(None)
    db = _by_org(table.snapshot(), metrics.TENANT_DB_TIME.prometheus_name)
    assert db == {"acme": 0.25, "none": 0.125}


def test_span_size_estimate_is_near_the_real_encoding() -> None:
    """The kept-span size estimate is within 25% of the OTLP protobuf encoding, per batch."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    for i in range(50):
        with tracer.start_as_current_span(f"GET /api/v1/leads/<int:pk>/{i % 3}") as span:
            span.set_attribute("http.route", "/api/v1/leads/<int:pk>/")
            span.set_attribute("http.response.status_code", 200)
            span.set_attribute("crm.org.id", f"org-{i}")
            with tracer.start_as_current_span("SELECT") as child:
                child.set_attribute("db.statement", "SELECT * FROM leads_lead WHERE id = %s")
                child.add_event("row", {"n": i})
    spans = exporter.get_finished_spans()
    real = encode_spans(spans).ByteSize()
    estimate = sum(_tenants.estimated_size(s) for s in spans)
    assert 0.75 * real <= estimate <= 1.25 * real, (estimate, real)


def test_spans_after_the_request_and_kept_spans_follow_the_trace_org() -> None:
    """Spans ending inside a request count for its org, the server span ending after it
    and the spans handed to the exporter count for the same org through the trace id."""
    table = _tenants.TenantTable(10)
    _tenants.install(table)
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(_tenants.TenantSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(_tenants.TenantSpanExporter(exported)))
    tracer = provider.get_tracer("t")
    try:
        with tracer.start_as_current_span("GET /api/v1/leads/"):
            opened = _tenants.begin()
            _usage.set_org("acme")  # as the view starts
            with tracer.start_as_current_span("SELECT"):
                pass
            _tenants.finish(opened, _usage.REQUESTS, 0.01)
        with tracer.start_as_current_span("poll"):  # no request: no org
            pass
    finally:
        _tenants.install(None)
    families = table.snapshot()
    recorded = _by_org(families, metrics.TENANT_SPANS_RECORDED.prometheus_name)
    kept = _by_org(families, metrics.TENANT_SPANS_KEPT.prometheus_name)
    assert recorded == {"acme": 2, "none": 1}
    assert kept == {"acme": 2, "none": 1}
    assert len(exported.get_finished_spans()) == 3


def test_every_scrape_of_a_group_names_the_same_orgs(tmp_path: Path) -> None:
    """Two processes' files, merged by two scrapes, give the same top N and the same sums
    (the ledger in `tenants.json` is shared); a later scrape keeps every series."""
    store = GroupStore(str(tmp_path), tenants_top_n=2)
    one, two = _tenants.TenantTable(50), _tenants.TenantTable(50)
    for i in range(40):
        (one if i % 2 else two).add(f"o{i % 8}", _request(None, 0.1 * (8 - i % 8)))
    now = time.time()
    store.write(ProcessState(os.getpid(), "a", now, one.snapshot()), None)
    store.write(ProcessState(os.getpid(), "b", now, two.snapshot()), None)
    first = _by_org(store.collect().families, REQ)
    second = _by_org(store.collect().families, REQ)
    assert first == second == {"o0": 5, "o1": 5, "other": 30}
    assert (tmp_path / "tenants.json").is_file()

"""Business metrics derived from the CRM's own spans, as they end, before sampling."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import StatusCode

from crm_otel.metrics import _runtime
from semconv import attributes, spans
from semconv.metrics import LookupResult, WorkflowStatus

_HIT, _MISS = LookupResult.HIT.value, LookupResult.MISS.value


class BusinessMetricsProcessor(SpanProcessor):
    """Feeds `workflow_*`, `search_*` and `lead_score_*` from the spans of those names.

    Added before the sampler's export processor, it sees every span that ends, kept or
    not, so sampling never biases these metrics. It holds no state and takes no lock.
    """

    def on_end(self, span: ReadableSpan) -> None:
        name = span.name
        if name not in _HANDLERS:
            return
        runtime = _runtime.current()
        if runtime is None or span.start_time is None or span.end_time is None:
            return
        duration_ms = (span.end_time - span.start_time) / 1e6
        _HANDLERS[name](runtime, span, span.attributes or {}, duration_ms)


def _workflow(
    runtime: _runtime.Runtime, span: ReadableSpan, attrs: Any, duration_ms: float
) -> None:
    i = runtime.instruments
    workflow = i.workflow_label(
        attrs.get(attributes.WORKFLOW_NAME) or attrs.get(attributes.WORKFLOW_ID) or "unknown"
    )
    failed = span.status.status_code is StatusCode.ERROR
    status = WorkflowStatus.FAILED if failed else WorkflowStatus.COMPLETED
    i.workflow_runs.add(1, {"workflow": workflow, "status": status.value})
    i.workflow_duration.record(duration_ms, {"workflow": workflow}, span_context=span.context)
    for event in span.events:
        event_attrs = event.attributes or {}
        if (
            event.name == spans.EVENT_ACTION_COMPLETE
            and event_attrs.get(attributes.ACTION_STATUS) == "failure"
        ):
            action = i.action_type_label(event_attrs.get(attributes.ACTION_TYPE) or "unknown")
            i.workflow_action_failures.add(1, {"action_type": action})


def _search(runtime: _runtime.Runtime, span: ReadableSpan, attrs: Any, duration_ms: float) -> None:
    i = runtime.instruments
    labels = {"type": i.search_type_label(attrs.get(attributes.SEARCH_TYPE) or "unknown")}
    i.search_latency.record(duration_ms, labels)
    results = attrs.get(attributes.SEARCH_RESULTS)
    if isinstance(results, int | float) and not isinstance(results, bool) and results >= 0:
        i.search_results.add(results, labels)
    hit = attrs.get(attributes.SEARCH_CACHE_HIT)
    if isinstance(hit, bool):
        i.search_cache_lookups.add(1, {**labels, "result": _HIT if hit else _MISS})


def _lead_score(
    runtime: _runtime.Runtime, span: ReadableSpan, attrs: Any, duration_ms: float
) -> None:
    i = runtime.instruments
    i.lead_score_duration.record(duration_ms)
    hit = attrs.get(attributes.LEAD_SCORE_CACHE_HIT)
    if isinstance(hit, bool):
        i.lead_score_cache_lookups.add(1, {"result": _HIT if hit else _MISS})
    if attrs.get(attributes.LEAD_SCORE_RECALCULATED) is True:
        i.lead_score_recalculations.add(1)


_HANDLERS = {
    spans.WORKFLOW_EXECUTE: _workflow,
    spans.SEARCH_QUERY: _search,
    spans.LEAD_SCORE_CALCULATE: _lead_score,
}

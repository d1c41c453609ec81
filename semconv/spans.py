"""Names of the spans the CRM creates itself with `TracingInstrumentation.create_span`."""

from typing import Final

WORKFLOW_EXECUTE: Final = "workflow.execute"
"""One run of a workflow; feeds the `workflow_*` metrics."""

SEARCH_QUERY: Final = "search.query"
"""One search; feeds the `search_*` metrics."""

LEAD_SCORE_CALCULATE: Final = "lead_score.calculate"
"""One lead score calculation; feeds the `lead_score_*` metrics."""

DB_QUERY: Final = "db.query"
"""A database query the app wraps by hand (auto-instrumented queries need none)."""

HTTP_CLIENT: Final = "http.client"
"""A call to an external HTTP API the app wraps by hand."""

EVENT_ACTION_START: Final = "action.start"
"""Span event: a workflow action started."""

EVENT_ACTION_COMPLETE: Final = "action.complete"
"""Span event: a workflow action completed (see `attributes.ACTION_STATUS`)."""

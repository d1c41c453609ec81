"""Attribute keys of the CRM's own semantic conventions.

Every key the project writes on a span, a log record or a metric point is a constant
here, so a rename is one edit.
"""

from enum import Enum
from typing import Final

USER_ID: Final = "crm.user.id"
"""Id of the authenticated user who made the request (the Django user's primary key)."""

ORG_ID: Final = "crm.org.id"
"""Id of the organisation (tenant) the request acts for."""

CORRELATION_ID: Final = "crm.correlation_id"
"""Correlation id of the request: the safe `X-Correlation-ID` header, else a new UUID4."""

WORKFLOW_ID: Final = "workflow.id"
"""Id of the workflow a `workflow.execute` span runs."""

WORKFLOW_NAME: Final = "workflow.name"
"""Human name of the workflow; a bounded set, used as the `workflow` metric label."""

WORKFLOW_ACTION_COUNT: Final = "workflow.action_count"
"""Number of actions the workflow executed."""

ACTION_TYPE: Final = "action.type"
"""Type of a workflow action (`send_email`, `update_field`, ...), on action events."""

ACTION_STATUS: Final = "status"
"""Outcome of a workflow action, on `action.complete` events: see `ActionStatus`."""

SEARCH_TYPE: Final = "search.type"
"""What a `search.query` span searched (`lead`, `contact`, ...)."""

SEARCH_RESULTS: Final = "search.results"
"""Number of results a `search.query` span returned."""

SEARCH_CACHE_HIT: Final = "search.cache_hit"
"""Whether a `search.query` span was answered from the cache."""

LEAD_ID: Final = "lead.id"
"""Id of the lead a `lead_score.calculate` span scored."""

LEAD_SCORE: Final = "lead.score"
"""The score a `lead_score.calculate` span computed."""

LEAD_SCORE_CACHE_HIT: Final = "lead_score.cache_hit"
"""Whether a `lead_score.calculate` span was answered from the cache."""

LEAD_SCORE_RECALCULATED: Final = "lead_score.recalculated"
"""Whether a `lead_score.calculate` span replaced a score computed earlier."""

ERROR_CODE: Final = "error.code"
"""Application error code carried by an exception (`VALIDATION_001`, ...)."""

SAMPLING_UPSTREAM_RELEASED: Final = "crm.sampling.upstream_released"
"""True on a Celery task's consumer span kept for an error or slowness when the web
process that enqueued it had already dropped its part of the trace for good."""


class ActionStatus(Enum):
    """Values of `ACTION_STATUS`."""

    SUCCESS = "success"
    FAILURE = "failure"


class Environment(Enum):
    """Deployment environments, the values of `CRM_OTEL_ENVIRONMENT`."""

    PRODUCTION = "production"
    STAGING = "staging"
    DEVELOPMENT = "development"

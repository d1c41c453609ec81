"""Request context shared by traces, logs and metrics: the correlation id and who asked."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar
from typing import Any

CORRELATION_HEADER = "X-Correlation-ID"
"""The request and response header that carries the correlation id."""

CELERY_HEADER = "crm_correlation_id"
"""The Celery message header that carries the correlation id into tasks."""

CELERY_ORG_HEADER = "crm_org_id"
"""The Celery message header that carries the sender's org id into tasks (cost by org)."""

_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

correlation_id_var: ContextVar[str | None] = ContextVar("crm_correlation_id", default=None)
"""The correlation id of the request or task being handled, if any."""

request_context_var: ContextVar[dict[str, Any] | None] = ContextVar(
    "crm_request_context", default=None
)
"""The request's context (user_id, org_id, method, path, remote_addr, user_agent) while
it is handled; `path` is the route template once Django has resolved it."""


def safe_correlation_id(candidate: str | None) -> str:
    """`candidate` when it is a safe id (<= 128 chars of `[A-Za-z0-9._:-]`), else a new UUID4."""
    if candidate is not None and _SAFE_ID.fullmatch(candidate):
        return candidate
    return str(uuid.uuid4())

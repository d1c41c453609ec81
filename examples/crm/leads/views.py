"""The example CRM's JSON API."""

import json
import logging
import secrets
import time

from django.core.cache import cache
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt

from crm_otel import TracingInstrumentation
from leads.models import Lead
from leads.scoring import calculate_score
from leads.tasks import score_new_lead, send_signin_code, sync_lead
from semconv import attributes, spans

logger = logging.getLogger("crm.leads")
# A PDF library's progress logger, shaped like weasyprint's: no level of its own, so quiet
# (the root logger's WARNING) unless the app turns it up in its LOGGING.
pdf_progress = logging.getLogger("pdfgen.progress")

WORKFLOWS = {
    1: ("Qualify High-Value Leads", ["update_field", "send_email", "assign_owner", "notify_slack"])
}


class WorkflowActionError(Exception):
    """A workflow action failed."""

    code = "WORKFLOW_001"


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


@csrf_exempt
def leads(request: HttpRequest) -> JsonResponse:
    if request.method == "POST":
        data = json.loads(request.body or b"{}")
        lead = Lead.objects.create(
            name=data.get("name", "Unnamed"),
            email=data.get("email", "lead@example.com"),
            company=data.get("company", ""),
            org_id=getattr(request, "crm_org_id", ""),
        )
        score_new_lead.delay(lead.pk)
        logger.info("lead created", extra={"lead_id": lead.pk})
        return JsonResponse({"id": lead.pk}, status=201)
    rows = list(Lead.objects.values("id", "name", "company", "score")[:50])
    return JsonResponse({"results": rows})


def lead_detail(request: HttpRequest, pk: int) -> JsonResponse:
    lead = get_object_or_404(Lead, pk=pk)
    return JsonResponse({"id": lead.pk, "name": lead.name, "score": lead.score})


def lead_score(request: HttpRequest, pk: int) -> JsonResponse:
    lead = get_object_or_404(Lead, pk=pk)
    cached = cache.get(f"lead-score:{pk}")
    if cached is not None:
        with TracingInstrumentation.create_span(
            spans.LEAD_SCORE_CALCULATE,
            {attributes.LEAD_ID: pk, attributes.LEAD_SCORE_CACHE_HIT: True},
        ):
            return JsonResponse({"id": pk, "score": cached, "cached": True})
    score = calculate_score(lead, recalculated=lead.score is not None)
    cache.set(f"lead-score:{pk}", score, 300)
    return JsonResponse({"id": pk, "score": score, "cached": False})


@csrf_exempt
def execute_workflow(request: HttpRequest, pk: int) -> JsonResponse:
    name, actions = WORKFLOWS.get(pk, (f"Workflow {pk}", ["update_field"]))
    fail = request.GET.get("fail") == "1"
    started = time.monotonic()
    with TracingInstrumentation.create_span(
        spans.WORKFLOW_EXECUTE,
        {
            attributes.WORKFLOW_ID: str(pk),
            attributes.WORKFLOW_NAME: name,
            attributes.WORKFLOW_ACTION_COUNT: len(actions),
        },
    ) as span:
        for index, action in enumerate(actions):
            span.add_event(spans.EVENT_ACTION_START, {attributes.ACTION_TYPE: action})
            if fail and index == 1:
                span.add_event(
                    spans.EVENT_ACTION_COMPLETE,
                    {attributes.ACTION_TYPE: action, attributes.ACTION_STATUS: "failure"},
                )
                raise WorkflowActionError(f"action {action} failed")
            Lead.objects.count()
            span.add_event(
                spans.EVENT_ACTION_COMPLETE,
                {attributes.ACTION_TYPE: action, attributes.ACTION_STATUS: "success"},
            )
    elapsed_ms = round((time.monotonic() - started) * 1000, 1)
    return JsonResponse({"workflow": name, "actions": len(actions), "duration_ms": elapsed_ms})


def search(request: HttpRequest) -> JsonResponse:
    query = request.GET.get("q", "")[:100]
    key = f"search:{query.lower()}"
    with TracingInstrumentation.create_span(
        spans.SEARCH_QUERY, {attributes.SEARCH_TYPE: "lead"}
    ) as span:
        hits = cache.get(key)
        span.set_attribute(attributes.SEARCH_CACHE_HIT, hits is not None)
        if hits is None:
            hits = list(
                Lead.objects.filter(name__icontains=query).values_list("id", flat=True)[:20]
            )
            cache.set(key, hits, 60)
        span.set_attribute(attributes.SEARCH_RESULTS, len(hits))
    return JsonResponse({"results": hits})


def slow(request: HttpRequest) -> JsonResponse:
    ms = min(int(request.GET.get("ms", "100")), 10_000)
    Lead.objects.exists()
    time.sleep(ms / 1000)
    return JsonResponse({"slept_ms": ms})


def sync(request: HttpRequest, pk: int) -> JsonResponse:
    """Enqueues a sync of the lead; `?fail=1` makes the task fail in the worker."""
    Lead.objects.filter(pk=pk).exists()
    sync_lead.delay(pk, fail=request.GET.get("fail") == "1")
    return JsonResponse({"queued": True}, status=202)


def lead_sheet(request: HttpRequest, pk: int) -> JsonResponse:
    """Renders a lead sheet; the PDF library reports its progress and a cropped image."""
    pdf_progress.info("Step 1 - Fetching lead %s", pk)
    pdf_progress.warning("lead %s: image too wide, cropped", pk)
    return JsonResponse({"id": pk, "pages": 1})


def boom(request: HttpRequest) -> JsonResponse:
    Lead.objects.exists()
    raise RuntimeError("boom: the example CRM failed on purpose")


@csrf_exempt
def login(request: HttpRequest) -> JsonResponse:
    """Logs a login the careless way, password in `extra`: crm-otel must redact it.

    Without a password it returns (not raises) a 400, which Django logs after every
    middleware has run: crm-otel's access middleware logs it in the request's span instead.
    """
    data = json.loads(request.body or b"{}")
    logger.info("login", extra={"username": data.get("username"), "password": data.get("password")})
    if not data.get("password"):
        return JsonResponse({"error": "password required"}, status=400)
    return JsonResponse({"ok": True})


@csrf_exempt
def signin(request: HttpRequest) -> JsonResponse:
    """Sends a one-time sign-in code by mail, from a Celery task given the code in clear."""
    email = json.loads(request.body or b"{}").get("email", "")
    code = f"{secrets.randbelow(1_000_000):06d}"
    cache.set(f"signin-code:{email}", code, 300)
    send_signin_code.delay(email, code)
    return JsonResponse({"sent": True}, status=202)

import logging

from celery import shared_task
from django.core.cache import cache

from leads.models import Lead
from leads.scoring import calculate_score

logger = logging.getLogger("crm.tasks")


@shared_task
def score_new_lead(lead_id: int) -> int | None:
    """Score a lead created by the API, in the background."""
    lead = Lead.objects.filter(pk=lead_id).first()
    if lead is None:
        logger.warning("lead %s vanished before scoring", lead_id)
        return None
    score = calculate_score(lead)
    cache.set(f"lead-score:{lead.pk}", score, 300)
    logger.info("scored lead %s", lead.pk)
    return score


@shared_task
def send_signin_code(email: str, code: str) -> str:
    """Mail a sign-in code: its arguments and result are secrets Celery would log by default."""
    if email.endswith(".invalid"):
        raise ValueError(f"mail server refused {email}: code {code} not delivered")
    logger.info("sign-in code sent")
    return f"code {code} sent to {email}"


@shared_task
def sync_lead(lead_id: int, fail: bool = False) -> int:
    """Push a lead to an outside system; `fail` makes it fail, as a flaky remote would."""
    Lead.objects.filter(pk=lead_id).exists()
    if fail:
        raise ConnectionError("the remote system refused the sync")
    return lead_id

from crm_otel import TracingInstrumentation
from leads.models import Lead
from semconv import attributes, spans


def calculate_score(lead: Lead, *, recalculated: bool = False) -> int:
    """A deterministic toy score, inside a `lead_score.calculate` span."""
    with TracingInstrumentation.create_span(
        spans.LEAD_SCORE_CALCULATE,
        {
            attributes.LEAD_ID: lead.pk,
            attributes.LEAD_SCORE_CACHE_HIT: False,
            attributes.LEAD_SCORE_RECALCULATED: recalculated,
        },
    ) as span:
        score = (
            len(lead.name) * 7 + len(lead.company) * 3 + (20 if lead.email.endswith(".com") else 0)
        ) % 101
        span.set_attribute(attributes.LEAD_SCORE, score)
        if lead.score != score:
            lead.score = score
            lead.save(update_fields=["score"])
        return score

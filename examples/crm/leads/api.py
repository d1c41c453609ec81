"""The example CRM's v2 API: Django REST framework with JWT authentication.

DRF authenticates inside the view, after every middleware has run; crm-otel still
records the user and the org (`CRM_OTEL_ORG_ATTRIBUTE=request.org`).
"""

import logging

from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.authentication import JWTAuthentication

from leads.models import Lead

logger = logging.getLogger("crm.leads")


class OrgLeadsView(APIView):
    """The leads of the caller's org."""

    authentication_classes = [JWTAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request):
        logger.info("org leads listed")
        org = request.org
        if not org:  # a lazy object: `is None` would never be true
            return Response({"results": []})
        rows = Lead.objects.filter(org_id=str(org.pk)).values("id", "name", "company", "score")
        return Response({"org": org.name, "results": list(rows[:50])})


class LeadsExportView(APIView):
    """Staff only: any other authenticated user gets a 403."""

    authentication_classes = [JWTAuthentication]
    permission_classes = [IsAdminUser]

    def get(self, request):
        return Response({"results": list(Lead.objects.values("id", "name")[:50])})

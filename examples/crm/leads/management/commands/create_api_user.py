"""`manage.py create_api_user alice --org acme`: an API user in an org, and a JWT for it."""

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from rest_framework_simplejwt.tokens import RefreshToken

from leads.models import Organization, Profile


class Command(BaseCommand):
    help = "Create (or update) an API user in an org; print its ids and an access token."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--org", required=True, help="organisation name")
        parser.add_argument("--password", help="lets the user get tokens at /api/v2/token/")

    def handle(self, username, org, password, **options):
        user, _ = get_user_model().objects.get_or_create(username=username)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save()
        organization, _ = Organization.objects.get_or_create(name=org)
        Profile.objects.update_or_create(user=user, defaults={"org": organization})
        access = RefreshToken.for_user(user).access_token
        self.stdout.write(
            json.dumps({"user_id": user.pk, "org_id": organization.pk, "access": str(access)})
        )

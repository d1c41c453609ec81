from django.conf import settings
from django.db import models


class Lead(models.Model):
    name = models.CharField(max_length=200)
    email = models.EmailField()
    company = models.CharField(max_length=200, blank=True)
    org_id = models.CharField(max_length=64, blank=True)
    score = models.IntegerField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]


class Organization(models.Model):
    """A customer organisation of the CRM: API users belong to one."""

    name = models.CharField(max_length=200, unique=True)


class Profile(models.Model):
    """The CRM side of a user: the organisation they act for."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    org = models.ForeignKey(Organization, on_delete=models.CASCADE)

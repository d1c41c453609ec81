"""How the example knows who is asking: demo headers standing in for session auth, and
the org of API users (authenticated by DRF, with JWT) on `request.org`."""

from django.contrib.auth.middleware import RemoteUserMiddleware
from django.utils.functional import SimpleLazyObject

from leads.models import Organization


class DemoUserMiddleware(RemoteUserMiddleware):
    """Logs in the user named by `X-Demo-User` and sets the org from `X-Demo-Org`.

    crm-otel reads the user from `request.user` and the org from `request.crm_org_id`.
    """

    header = "HTTP_X_DEMO_USER"
    # Under ASGI, the async path (Django 5.2, 6.0) of RemoteUserMiddleware reads "HTTP_" + header
    # (HTTP_HTTP_X_DEMO_USER here): the sync path reads the header under WSGI and ASGI alike.
    async_capable = False

    def __call__(self, request):
        org = request.headers.get("X-Demo-Org")
        if org:
            request.crm_org_id = org[:64]
        return super().__call__(request)


class OrgMiddleware:
    """Puts the org of the user on `request.org`, looked up when a view first uses it.

    Lazily, because DRF authenticates API users inside the view: by the time an API view
    reads `request.org`, `request.user` is the user of the JWT.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.org = SimpleLazyObject(lambda: _org_of(request.user))
        return self.get_response(request)


def _org_of(user):
    if not user.is_authenticated:
        return None
    return Organization.objects.filter(profile__user=user).first()

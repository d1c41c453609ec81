"""How the example knows who is asking: demo headers, standing in for real auth."""

from django.contrib.auth.middleware import RemoteUserMiddleware


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

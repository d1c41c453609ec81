"""Settings of the example CRM.

Embedded defaults (SQLite, local-memory cache, eager Celery) unless DATABASE_URL and
REDIS_URL point at real servers. With DATABASE_URL, CRM_EXAMPLE_DB_POOL=true (or a JSON
object of psycopg_pool options, e.g. {"max_size": 4}) turns on Django's connection pool
(Django 5.1+ with psycopg 3 and psycopg[pool]). Note: no crm-otel setting here; it is all
zero-code.
"""

import json
import os
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-crm-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "false").lower() == "true"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "rest_framework",
    "leads",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "leads.middleware.DemoUserMiddleware",
    "leads.middleware.OrgMiddleware",
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.RemoteUserBackend",
    # Passwords, for the JWT token endpoint of the v2 API.
    "django.contrib.auth.backends.ModelBackend",
]
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework_simplejwt.authentication.JWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}
SIMPLE_JWT = {
    # HS256 wants a key of at least 32 bytes (PyJWT warns about shorter ones).
    "SIGNING_KEY": os.environ.get("CRM_JWT_SIGNING_KEY", SECRET_KEY * 2),
}
ROOT_URLCONF = "crm.urls"
WSGI_APPLICATION = "crm.wsgi.application"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def _database(url: str | None) -> dict[str, object]:
    if not url:
        path = os.environ.get("CRM_SQLITE_PATH") or os.path.join(
            tempfile.gettempdir(), "crm-otel-example.sqlite3"
        )
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": path}
    parts = urlsplit(url)
    database: dict[str, object] = {
        # Django picks psycopg 3 when it is installed, else psycopg2.
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/"),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        "CONN_MAX_AGE": 0,
    }
    pool = _pool_options(os.environ.get("CRM_EXAMPLE_DB_POOL", ""))
    if pool:
        unavailable = _pool_unavailable()
        if unavailable:
            print(f"example CRM: CRM_EXAMPLE_DB_POOL ignored: {unavailable}", file=sys.stderr)
        else:
            database["OPTIONS"] = {"pool": pool}
    return database


def _pool_options(value: str) -> bool | dict[str, object]:
    """`true` (psycopg_pool's defaults) or a JSON object of pool options; else no pool."""
    if value.strip().startswith("{"):
        try:
            options = json.loads(value)
        except ValueError:
            options = None
        if isinstance(options, dict):
            return options
    elif value.strip().lower() in ("", "false"):
        return False
    elif value.strip().lower() == "true":
        return True
    print(
        "example CRM: CRM_EXAMPLE_DB_POOL: expected true, false or a JSON object of "
        f"psycopg_pool options, got {value!r}; no pool",
        file=sys.stderr,
    )
    return False


def _pool_unavailable() -> str:
    """Why Django's connection pool cannot be used here, or "" when it can."""
    import django

    if django.VERSION < (5, 1):
        return f"Django's pool needs Django 5.1+, this is {django.get_version()}"
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        return "Django's pool needs psycopg 3 with its pool (pip install 'psycopg[binary,pool]')"
    return ""


DATABASES = {"default": _database(os.environ.get("DATABASE_URL"))}

REDIS_URL = os.environ.get("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_TASK_ALWAYS_EAGER = False
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CELERY_BROKER_URL = "memory://"
    CELERY_TASK_ALWAYS_EAGER = True
# Celery stores task results in Redis when asked to (e.g. CELERY_RESULT_BACKEND=$REDIS_URL).
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# The app's own log levels (crm-otel changes none): its `crm.*` loggers write INFO; every
# other logger keeps Python's default, WARNING from the root.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"crm": {"level": "INFO"}},
}

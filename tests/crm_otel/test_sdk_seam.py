"""crm_otel's seam: the private names of the SDK, the contrib packages and Django are
still where `crm_otel._sdk` expects them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from crm_otel._sdk import DJANGO_MIDDLEWARE, PRIVATE_NAMES, PrivateName
from tests._seam import installed, missing


@pytest.mark.parametrize("name", PRIVATE_NAMES, ids=lambda n: f"{n.module}:{n.qualname}")
def test_private_name_is_where_the_seam_expects(name: PrivateName) -> None:
    """Each private name crm_otel uses exists in the installed release of its owner."""
    if installed(name.distribution) is None:
        pytest.skip(f"{name.distribution} is not installed")
    problem = missing(
        "crm_otel/_sdk.py", name.distribution, name.module, name.qualname, name.attribute
    )
    assert problem == "", f"{problem} (used for: {name.use})"


def test_django_middleware_path_is_the_instrumentations() -> None:
    """The dotted path crm-otel looks for is the class the Django instrumentation adds."""
    from opentelemetry.instrumentation.django.middleware import otel_middleware

    cls = otel_middleware._DjangoMiddleware
    assert f"{cls.__module__}.{cls.__qualname__}" == DJANGO_MIDDLEWARE, (
        "crm_otel/_sdk.py: DJANGO_MIDDLEWARE no longer names the instrumentation's middleware"
    )


def test_a_moved_name_is_reported_by_name() -> None:
    """A name that is gone gives one line naming it, the release and the seam."""
    problem = missing("crm_otel/_sdk.py", "opentelemetry-sdk", "opentelemetry.sdk", "_gone", "")
    assert problem.startswith("crm_otel/_sdk.py: opentelemetry.sdk._gone is gone from ")
    attribute = missing(
        "crm_otel/_sdk.py", "Django", "django.utils.log", "log_response", "_never_set"
    )
    assert "django.utils.log.log_response (._never_set)" in attribute


_MIDDLEWARE_SCRIPT = """
import json
import django
from django.conf import settings
from crm_otel import _django
from crm_otel._sdk import DJANGO_MIDDLEWARE

settings.configure(MIDDLEWARE=["app.First"])
django.setup()
add = {add!r}
def instrument():
    if add and DJANGO_MIDDLEWARE not in settings.MIDDLEWARE:
        settings.MIDDLEWARE = [DJANGO_MIDDLEWARE, *settings.MIDDLEWARE]
for _ in range(2):
    _django._instrument_with_settings(instrument)
print(json.dumps(settings.MIDDLEWARE))
"""


@pytest.mark.parametrize("add", [True, False])
def test_missing_instrumentation_middleware_is_reported_once(add: bool) -> None:
    """When the instrumentation's middleware is missing after it ran, crm-otel says so in
    one line (once) and puts its own middleware first; when present, right after it."""
    env = {k: v for k, v in os.environ.items() if k != "OTEL_PYTHON_DJANGO_INSTRUMENT"}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_MIDDLEWARE_SCRIPT.format(add=add))],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    middleware = json.loads(result.stdout)
    reports = [line for line in result.stderr.splitlines() if "is not in MIDDLEWARE" in line]
    if add:
        assert reports == []
        assert middleware[:2] == [DJANGO_MIDDLEWARE, "crm_otel.metrics.MetricsMiddleware"]
    else:
        assert len(reports) == 1 and DJANGO_MIDDLEWARE in reports[0]
        assert middleware[0] == "crm_otel.metrics.MetricsMiddleware"

"""Users that Django REST framework authenticates inside the view (JWT) are recorded like
session users: user id and org id on the server span and on the access line."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.blackbox._harness import (
    EXAMPLE,
    PYTHON,
    OtlpReceiver,
    crm_env,
    get,
    json_lines,
    running,
    server_span,
    start_web,
)

pytestmark = pytest.mark.blackbox


def _create_api_user(username: str, org: str, password: str) -> dict[str, Any]:
    """Run the example's `create_api_user` command (untraced); its ids and a token."""
    result = subprocess.run(
        [PYTHON, "manage.py", "create_api_user", username, "--org", org, "--password", password],
        cwd=EXAMPLE,
        env=crm_env(None),
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def _lines(output: str, correlation_id: str) -> list[dict[str, Any]]:
    return [line for line in json_lines(output) if line.get("correlation_id") == correlation_id]


def _access_line(output: str, correlation_id: str) -> dict[str, Any]:
    found = [x for x in _lines(output, correlation_id) if x["logger"] == "crm.access"]
    assert len(found) == 1, f"{len(found)} access lines for {correlation_id}"
    return found[0]


def test_jwt_users_are_recorded_like_session_users(crm: None, receiver: OtlpReceiver) -> None:
    """A JWT request to a DRF view has the user id and the org id (from `request.org`) on its
    server span and its access line, and the user id on the view's log line; a rejected
    token leaves no user id; a forbidden user keeps theirs; a remote-user request still has
    user and org as before."""
    api_user = _create_api_user("api-alice", "Acme", "correct horse")
    user_id, org_id = str(api_user["user_id"]), str(api_user["org_id"])
    env = crm_env(receiver, CRM_OTEL_ORG_ATTRIBUTE="request.org")
    with running(start_web(env)) as web:
        status, _, body = get(
            web.url + "/api/v2/token/",
            data=json.dumps({"username": "api-alice", "password": "correct horse"}).encode(),
            headers={"Content-Type": "application/json", "X-Correlation-ID": "drf-token"},
        )
        assert status == 200, body
        bearer = {"Authorization": "Bearer " + json.loads(body)["access"]}
        status, _, body = get(
            web.url + "/api/v1/leads/",
            data=json.dumps({"name": "Ada", "email": "ada@example.com"}).encode(),
            headers={
                "Content-Type": "application/json",
                "X-Demo-User": "session-bob",
                "X-Demo-Org": org_id,
                "X-Correlation-ID": "drf-session",
            },
        )
        assert status == 201, body
        status, _, body = get(
            web.url + "/api/v2/leads/", headers={**bearer, "X-Correlation-ID": "drf-jwt"}
        )
        assert status == 200, body
        assert [row["name"] for row in json.loads(body)["results"]] == ["Ada"]
        bad = {"Authorization": "Bearer not.a.token", "X-Correlation-ID": "drf-bad"}
        assert get(web.url + "/api/v2/leads/", headers=bad)[0] == 401
        forbidden = {**bearer, "X-Correlation-ID": "drf-forbidden"}
        assert get(web.url + "/api/v2/leads/export/", headers=forbidden)[0] == 403

        jwt = server_span(receiver, "drf-jwt")["attributes"]
        rejected = server_span(receiver, "drf-bad")["attributes"]
        denied = server_span(receiver, "drf-forbidden")["attributes"]
        session = server_span(receiver, "drf-session")["attributes"]
        token = server_span(receiver, "drf-token")["attributes"]
        output = web.output()

    assert (jwt["crm.user.id"], jwt["crm.org.id"]) == (user_id, org_id)
    assert jwt["http.route"] == "api/v2/leads/"
    access = _access_line(output, "drf-jwt")
    assert (access["user_id"], access["org_id"], access["status_code"]) == (user_id, org_id, 200)
    (in_view,) = [x for x in _lines(output, "drf-jwt") if x["message"] == "org leads listed"]
    assert in_view["user_id"] == user_id  # logged by the view, after DRF authenticated

    assert "crm.user.id" not in rejected and "crm.org.id" not in rejected
    for line in _lines(output, "drf-bad"):  # the access line and Django's "Unauthorized"
        assert "user_id" not in line and "org_id" not in line, line
    assert _access_line(output, "drf-bad")["status_code"] == 401

    assert denied["crm.user.id"] == user_id
    assert _access_line(output, "drf-forbidden")["user_id"] == user_id
    assert "crm.user.id" not in token

    assert session["crm.user.id"] not in ("", user_id) and session["crm.org.id"] == org_id
    access = _access_line(output, "drf-session")
    assert (access["user_id"], access["org_id"]) == (session["crm.user.id"], org_id)
    assert "correct horse" not in output and bearer["Authorization"] not in output

"""Tokens: shown once, stored hashed, scoped, revocable, rate-limited; sessions are not accepted."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from api.models import ApiToken
from api.services import api_token_create, api_token_revoke
from tests.api.conftest import ApiClient


def test_no_token_is_401_problem_with_www_authenticate(news):
    response = ApiClient(None).get("/lists")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response["WWW-Authenticate"].startswith("Bearer")
    body = response.json()
    assert body["status"] == 401 and body["title"] == "Not authenticated" and "Bearer" in body["detail"]


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer nonsense", "Basic YWRtaW46cGFzcw==", "Bearer dwv_00000000_forged", "Bearer dwv_" + "x" * 500],
)
def test_malformed_or_forged_tokens_are_401(header, cast, news):
    response = Client().get("/api/v1/lists", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401


def test_a_token_is_kept_only_as_a_hash(cast):
    created = api_token_create(user=cast["admin"], name="site form", scopes=["subscribers:write"])
    row = ApiToken.objects.get()
    assert created.secret.startswith(f"dwv_{row.prefix}_")
    assert row.secret_hash == hashlib.sha256(created.secret.encode()).hexdigest()
    assert created.secret not in str(list(ApiToken.objects.values()))


def test_a_session_is_not_accepted(client, cast, news):
    client.force_login(cast["admin"])
    assert client.get("/api/v1/lists").status_code == 401


def test_a_revoked_token_stops_working_at_once(cast, news):
    created = api_token_create(user=cast["admin"], name="x", scopes=["subscribers:read"])
    api = ApiClient(created.secret)
    assert api.get("/lists").status_code == 200
    assert api_token_revoke(token=created.token) is True
    assert api.get("/lists").status_code == 401
    assert api_token_revoke(token=created.token) is False


def test_scope_and_permission_are_both_needed(token_for, news):
    # An admin's token without the scope, and an editor's with it (editors may not read subscribers).
    assert token_for("admin", "issues:read").get("/subscribers").status_code == 403
    response = token_for("editor", "subscribers:read").get("/subscribers")
    assert response.status_code == 403
    assert "permission" in response.json()["detail"]
    assert token_for("admin", "subscribers:read").get("/subscribers").status_code == 200


def test_staff_in_no_group_and_inactive_users_get_nothing(token_for, cast, news):
    assert token_for("outsider").get("/lists").status_code == 403
    api = token_for("admin")
    cast["admin"].is_active = False
    cast["admin"].save()
    assert api.get("/lists").status_code == 403


def test_last_used_is_written_at_most_once_a_minute(token_for, news):
    api = token_for("admin", "subscribers:read")
    api.get("/lists")
    token = ApiToken.objects.get()
    first = token.last_used_at
    assert first is not None
    api.get("/lists")
    assert ApiToken.objects.get().last_used_at == first
    ApiToken.objects.update(last_used_at=first - timedelta(minutes=2))
    api.get("/lists")
    assert ApiToken.objects.get().last_used_at > first - timedelta(seconds=1)


def test_rate_limit_answers_429_with_retry_after(token_for, news, settings):
    settings.API_RATE_PER_MINUTE = 3
    api = token_for("admin", "subscribers:read")
    assert [api.get("/lists").status_code for _ in range(3)] == [200, 200, 200]
    response = api.get("/lists")
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 61
    assert response["Content-Type"] == "application/problem+json"
    # Another token has its own allowance.
    assert token_for("admin", "subscribers:read").get("/lists").status_code == 200


def test_create_refuses_unknown_scopes_and_non_staff(cast):
    from django.contrib.auth.models import User
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        api_token_create(user=cast["admin"], name="x", scopes=["everything"])
    with pytest.raises(ValidationError):
        api_token_create(user=User.objects.create_user("plain"), name="x", scopes=["issues:read"])
    with pytest.raises(ValidationError):
        api_token_create(user=cast["admin"], name="   ", scopes=["issues:read"])
    assert not ApiToken.objects.exists()


def test_command_creates_prints_once_and_revokes(cast, news):
    out = StringIO()
    call_command(
        "api_token", "create", "--user", "ada", "--scope", "subscribers:read", "--name", "CRM sync", stdout=out
    )
    secret = out.getvalue().strip()
    assert ApiClient(secret).get("/lists").status_code == 200
    listing = StringIO()
    call_command("api_token", "list", stdout=listing)
    assert "CRM sync" in listing.getvalue() and secret not in listing.getvalue()
    call_command("api_token", "revoke", secret.split("_")[1], stdout=StringIO())
    assert ApiClient(secret).get("/lists").status_code == 401
    with pytest.raises(CommandError):
        call_command("api_token", "create", "--user", "nobody", "--scope", "issues:read", "--name", "x")


def test_admin_creates_a_token_on_the_page_and_sees_it_once(client, cast, news):
    client.force_login(cast["admin"])
    response = client.post(
        "/editor/api-tokens/",
        {"name": "Website signup", "user": cast["admin"].pk, "scopes": ["subscribers:write", "subscribers:read"]},
    )
    assert response.status_code == 201
    token = ApiToken.objects.get()
    page = response.content.decode()
    secret = page.split('id="new-token" type="text" readonly value="')[1].split('"')[0]
    assert secret.startswith(f"dwv_{token.prefix}_")
    assert sorted(token.scopes) == ["subscribers:read", "subscribers:write"]
    assert ApiClient(secret).get("/lists").status_code == 200
    again = client.get("/editor/api-tokens/").content.decode()
    assert "Website signup" in again and secret not in again
    response = client.post(f"/editor/api-tokens/{token.pk}/revoke/")
    assert response.status_code == 302
    assert ApiToken.objects.get().revoked_at is not None
    assert ApiClient(secret).get("/lists").status_code == 401


def test_the_page_refuses_a_token_without_scopes(client, cast):
    client.force_login(cast["admin"])
    response = client.post("/editor/api-tokens/", {"name": "x", "user": cast["admin"].pk})
    assert response.status_code == 200
    assert not ApiToken.objects.exists()


def test_docs_are_for_staff_when_debug_is_off(client, cast, settings):
    settings.DEBUG = False
    assert client.get("/api/v1/docs").status_code == 302
    client.force_login(cast["editor"])
    response = client.get("/api/v1/docs")
    assert response.status_code == 200 and b"swagger" in response.content.lower()
    assert Client().get("/api/v1/openapi.json").status_code == 200


def test_the_document_names_scopes_problems_and_idempotency():
    document = Client().get("/api/v1/openapi.json").json()
    assert document["openapi"].startswith("3.")
    create = document["paths"]["/api/v1/subscribers"]["post"]
    assert create["security"] == [{"bearerToken": ["subscribers:write"]}]
    assert "application/problem+json" in create["responses"]["422"]["content"]
    assert any(p["name"] == "Idempotency-Key" for p in create["parameters"])


def test_an_unknown_api_path_is_a_404_problem(admin_api):
    response = admin_api.get("/no/such/thing")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


def test_calls_are_served_when_the_rate_limits_redis_is_down(token_for, news, settings):
    api = token_for("admin", "subscribers:read")
    # Nothing listens there; changing CACHES makes Django drop its cache connections.
    settings.CACHES = {
        **settings.CACHES,
        "default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:9/0"},
    }
    assert api.get("/lists").status_code == 200

"""Security headers on every page: a Content-Security-Policy without unguarded inline script, Permissions-Policy."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from subscriptions.models import MailingList
from tests.issues.test_views import cast, editor_urls, issue, mailing_list  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db

INLINE_SCRIPT = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)


def _policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


def _assert_guarded(response, where: str) -> None:
    policy = _policy(response)
    assert "'unsafe-inline'" not in policy["script-src"], where
    assert policy["script-src"][0] == "'self'", where
    assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"], where
    assert "camera=()" in response["Permissions-Policy"], where
    if "text/html" not in response.get("Content-Type", ""):
        return
    nonces = [v.removeprefix("'nonce-").removesuffix("'") for v in policy["script-src"] if v.startswith("'nonce-")]
    for attributes in INLINE_SCRIPT.findall(response.content.decode()):
        if "src=" in attributes or "application/json" in attributes:
            continue
        found = re.search(r'nonce="([^"]+)"', attributes)
        assert found and found.group(1) in nonces, f"inline script without the page's nonce on {where}"


def test_every_public_page_has_the_policy(client):
    MailingList.objects.create(name="News", slug="news", from_name="N", from_email="n@example.org")
    for path in ["/", "/subscribe/", "/lists/news/", "/archive/", "/editor/login/", "/admin/login/", "/u/forged/"]:
        response = client.get(path)
        assert response.status_code in (200, 404), path
        _assert_guarded(response, path)
        assert _policy(response)["frame-ancestors"] == ["'none'"]
    _assert_guarded(client.get("/healthz"), "/healthz")
    _assert_guarded(client.get("/no-such-page/"), "a 404")


def test_every_editor_page_has_the_policy_and_no_inline_script(client, cast, issue):  # noqa: F811
    client.force_login(cast["admin"])
    client.post(reverse("editor:issue_send", kwargs={"issue_id": issue.pk}))
    mail_preview = reverse("editor:issue_preview_html", kwargs={"issue_id": issue.pk})  # its own policy, below
    for method, url in editor_urls(issue.pk):
        if method == "get" and url != mail_preview:
            response = client.get(url)  # a sending issue redirects from its edit and send pages
            assert response.status_code in (200, 302), url
            _assert_guarded(response, url)
    for path in ["/admin/", "/admin/subscriptions/subscriber/", "/editor/comments/", "/editor/subscribers/import/"]:
        _assert_guarded(client.get(path), path)

    progress = client.get(reverse("editor:issue_progress", kwargs={"issue_id": issue.pk}))
    body = progress.content.decode()
    # No inline script at all: the page's script is a file from this site, which the policy allows.
    assert '<script src="/static/js/progress.js" defer></script>' in body
    assert "<script>" not in body and "<script nonce" not in body
    assert "script-src 'self'" in progress["Content-Security-Policy"]


def test_the_mail_preview_keeps_its_own_stricter_policy(client, cast, issue):  # noqa: F811
    client.force_login(cast["editor"])
    frame = client.get(reverse("editor:issue_preview_html", kwargs={"issue_id": issue.pk}))
    assert frame["Content-Security-Policy"].startswith("script-src 'none'")
    assert "'self'" not in frame["Content-Security-Policy"]
    assert frame["X-Frame-Options"] == "SAMEORIGIN"


def test_responses_carry_the_other_hardening_headers(client):
    response = client.get("/")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"


# --- /healthz ------------------------------------------------------------------------------------


def test_healthz_names_what_is_down_without_the_errors_text(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["broker"] == {"status": "down"}
    assert "127.0.0.1" not in response.content.decode() and "Error" not in response.content.decode()


def test_healthz_gives_the_errors_text_to_whoever_has_the_token(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.HEALTHZ_TOKEN = "a-long-random-healthz-token"
    assert "error" not in client.get("/healthz?token=wrong").json()["broker"]
    assert "error" not in client.get("/healthz?token=").json()["broker"]
    detailed = client.get("/healthz?token=a-long-random-healthz-token").json()
    assert detailed["broker"]["status"] == "down" and detailed["broker"]["error"]


def test_healthz_without_a_token_setting_never_gives_the_text(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.HEALTHZ_TOKEN = ""
    assert "error" not in client.get("/healthz?token=").json()["broker"]

"""Provider webhooks as an attacker posts them: replays, re-signed events, unconfigured providers, junk."""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest
from django.test import Client
from django.urls import reverse

from dwvlist.redis import mailgun_token_key, redis_client
from issues.feedback import urls as webhook_urls
from issues.models import DeliveryEvent
from subscriptions.models import Subscriber, Subscription, Suppression
from tests.issues.payloads import WEBHOOK_SECRET, anymail_settings, basic_auth, tracking_post
from tests.issues.test_webhooks import make_delivery, make_issue, make_list, subscribe

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def webhook_settings(settings):
    settings.ANYMAIL = anymail_settings()
    settings.FEEDBACK_INLINE_SECONDS = 30.0
    settings.FEEDBACK_INLINE_EVENTS = 10_000  # every post stored in its request (the queued path: test_pending_events)
    settings.MAILGUN_WEBHOOK_MAX_AGE = 300
    return settings


@pytest.fixture
def cast():
    news = make_list("news")
    issue = make_issue(news)
    readers = {}
    for name in ("alice", "bob"):
        reader = Subscriber.objects.create(email=f"{name}@example.org")
        subscribe(reader, news)
        readers[name] = make_delivery(issue, reader, news, f"<msg-{name}@esp.example>")
    return readers


def complaint(delivery, **values):
    return tracking_post(
        "mailgun", "complaint", RECIPIENT=delivery.email, MESSAGE_ID=delivery.provider_message_id, **values
    )


def _active(email: str) -> bool:
    return Subscription.objects.filter(subscriber__email=email, status="active").exists()


# --- Mailgun: a signature is good once, and only for a few minutes ------------------------------


def test_a_captured_mailgun_signature_replayed_with_another_readers_event_is_refused(client, cast):
    first = complaint(cast["alice"])
    assert first.send(client).status_code == 200
    signature = json.loads(first.body)["signature"]

    # Same token, timestamp and signature, new event data naming Bob.
    forged = complaint(cast["bob"], TOKEN=signature["token"], SIGNED_AT=signature["timestamp"])
    assert json.loads(forged.body)["signature"] == signature
    response = forged.send(client)

    assert response.status_code == 400
    assert DeliveryEvent.objects.count() == 1
    assert not Suppression.objects.filter(email="bob@example.org").exists()
    assert _active("bob@example.org")


def test_a_mailgun_event_signed_again_with_a_new_token_is_stored_once(client, cast):
    event_id, when = uuid.uuid4().hex[:22], time.time() - 30
    assert complaint(cast["alice"], EVENT_ID=event_id, when=when).send(client).status_code == 200
    Subscription.objects.update(status="active", unsubscribed_at=None, unsubscribe_source="")

    # Mailgun (or whoever) posts the same event again under a fresh signature.
    again = complaint(cast["alice"], EVENT_ID=event_id, when=when)
    assert again.send(client).status_code == 200

    assert DeliveryEvent.objects.count() == 1
    assert _active("alice@example.org")  # its effects were not applied twice
    # A different event about the same reader is, of course, stored.
    assert complaint(cast["alice"], when=when).send(client).status_code == 200
    assert DeliveryEvent.objects.count() == 2


@pytest.mark.parametrize(("age", "status"), [(299, 200), (301, 400), (3600, 400), (-301, 400), (-30, 200)])
def test_mailgun_signatures_outside_the_time_window_are_refused(client, cast, age, status):
    response = complaint(cast["alice"], SIGNED_AT=int(time.time() - age)).send(client)
    assert response.status_code == status
    assert DeliveryEvent.objects.count() == (1 if status == 200 else 0)


def test_the_window_is_a_setting(client, cast, settings):
    settings.MAILGUN_WEBHOOK_MAX_AGE = 60
    assert complaint(cast["alice"], SIGNED_AT=int(time.time() - 90)).send(client).status_code == 400


@pytest.mark.parametrize("timestamp", ["nan", "inf", "1e309", "yesterday", ""])
def test_a_signed_but_absurd_timestamp_is_refused_without_error(client, cast, timestamp):
    response = complaint(cast["alice"], SIGNED_AT=timestamp).send(client)
    assert response.status_code == 400
    assert not DeliveryEvent.objects.exists()


def test_a_used_token_is_remembered_in_redis_for_longer_than_the_window(client, cast):
    post = complaint(cast["alice"])
    post.send(client)
    token = json.loads(post.body)["signature"]["token"]
    assert redis_client().ttl(mailgun_token_key(token)) > 300


def test_after_a_failure_on_our_side_mailguns_retry_of_the_same_post_is_accepted(client, cast, monkeypatch):
    from issues.feedback import webhooks

    post = complaint(cast["alice"])
    real = webhooks.events_accept
    monkeypatch.setattr(webhooks, "events_accept", lambda items: (_ for _ in ()).throw(ConnectionError("db gone")))
    assert post.send(Client(raise_request_exception=False)).status_code == 500
    monkeypatch.setattr(webhooks, "events_accept", real)

    assert post.send(client).status_code == 200
    assert DeliveryEvent.objects.count() == 1


# --- Only the configured providers answer ---------------------------------------------------------

ALL_PROVIDERS = {
    "MAILGUN_WEBHOOK_SIGNING_KEY": "mailgun-key",
    "AMAZON_SES_AUTO_CONFIRM_SNS_SUBSCRIPTIONS": False,
    "BREVO_API_KEY": "k",
    "SENDINBLUE_API_KEY": "k",
    "SENDGRID_API_KEY": "k",
    "POSTMARK_SERVER_TOKEN": "k",
    "MAILJET_API_KEY": "k",
    "MAILJET_SECRET_KEY": "k",
    "MANDRILL_API_KEY": "k",
    "MANDRILL_WEBHOOK_KEY": "k",
    "MAILERSEND_API_TOKEN": "k",
    "MAILERSEND_WEBHOOK_SIGNING_SECRET": "k",
    "MAILERSEND_INBOUND_SECRET": "k",
    "MAILTRAP_API_TOKEN": "k",
    "POSTAL_WEBHOOK_KEY": base64.b64encode(b"not really a key").decode(),
    "RESEND_API_KEY": "k",
    "RESEND_SIGNING_SECRET": "whsec_" + base64.b64encode(b"0123456789abcdef").decode(),
    "SPARKPOST_API_KEY": "k",
    "UNISENDER_GO_API_KEY": "k",
}


def _paths() -> list[tuple[str, str]]:
    paths = []
    for pattern in webhook_urls.urlpatterns:
        try:
            path = reverse(f"webhooks:{pattern.name}")
        except Exception:  # anymail's optional "_mime" group
            path = reverse(f"webhooks:{pattern.name}", args=[""])
        paths.append((webhook_urls._provider(pattern.name), path))
    return paths


def test_every_anymail_webhook_is_routed():
    from anymail import urls as anymail_urls

    assert len(_paths()) == len(anymail_urls.urlpatterns) > 20


def test_providers_that_are_not_configured_are_not_there(client, settings):
    settings.EMAIL_TRANSPORT = "outbox"
    settings.ANYMAIL = {"WEBHOOK_SECRET": WEBHOOK_SECRET}
    auth = {"Authorization": basic_auth(WEBHOOK_SECRET)}
    for _, path in _paths():
        assert client.post(path, b"{}", content_type="application/json", headers=auth).status_code == 404, path
        assert client.head(path).status_code == 404, path

    # The provider that sends the mail answers; the rest stay away.
    settings.EMAIL_TRANSPORT = "postmark"
    for provider, path in _paths():
        answer = client.post(path, b"{}", content_type="application/json", headers=auth).status_code
        assert (answer != 404) == (provider == "postmark"), (path, answer)
    # So does one whose settings are present, for webhooks alone.
    settings.ANYMAIL = {"WEBHOOK_SECRET": WEBHOOK_SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": "k"}
    assert client.post("/webhooks/mailgun/tracking/", b"{}", content_type="application/json").status_code == 400


def test_a_configured_provider_without_its_own_key_is_not_there_rather_than_broken(settings):
    settings.EMAIL_TRANSPORT = "postal"  # Postal's webhooks need POSTAL_WEBHOOK_KEY, which is not set
    settings.ANYMAIL = {"WEBHOOK_SECRET": WEBHOOK_SECRET}
    response = Client(raise_request_exception=False).post(
        "/webhooks/postal/tracking/", b"{}", content_type="application/json"
    )
    assert response.status_code == 404


JUNK_BODIES = [
    b"",
    b"{}",
    b"[]",
    b"null",
    b"\xff\xfe\x00garbage",
    b'{"signature": {"token": 1, "timestamp": [], "signature": null}, "event-data": "x"}',
    b'[{"event": "bounce", "email": null, "sg_event_id": {}}]',
    b'{"Type": "Notification", "Message": "{not json"}',
    b"token=&timestamp=nan&signature=x&event=delivered",
    b"x" * 200_000,
]
CONTENT_TYPES = ["application/json", "application/x-www-form-urlencoded", "multipart/form-data; boundary=zz"]


def _junk_posts(client, auth: str | None) -> set[int]:
    seen = set()
    headers = {"Authorization": auth} if auth else {}
    for _, path in _paths():
        for body in JUNK_BODIES:
            for content_type in CONTENT_TYPES:
                status = client.post(path, body, content_type=content_type, headers=headers).status_code
                seen.add(status)
                assert status < 500, (path, body[:40], content_type, auth, status)
    return seen


@pytest.mark.slow
def test_no_webhook_answers_500_to_malformed_or_unauthenticated_posts(settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": WEBHOOK_SECRET, **ALL_PROVIDERS}
    client = Client(raise_request_exception=False)

    for auth in (None, basic_auth("dwvhook:wrong"), basic_auth("x:\u00e9\u00e9"), "Basic !!!", "Bearer x"):
        assert _junk_posts(client, auth) <= {400, 401, 403, 404}
    assert not DeliveryEvent.objects.exists()  # nothing unauthenticated is ever stored

    # With the right credentials (but no valid signature where the provider signs) junk is still no 500.
    assert _junk_posts(client, basic_auth(WEBHOOK_SECRET)) <= {200, 400, 401, 403, 404}


def test_with_redis_unreachable_a_mailgun_post_is_asked_again_later_not_accepted_unchecked(client, cast, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    response = complaint(cast["alice"]).send(client)
    assert response.status_code == 503
    assert not DeliveryEvent.objects.exists()

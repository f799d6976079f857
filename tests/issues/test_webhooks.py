"""Provider tracking webhooks, posted over HTTP in each provider's own format."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid

import pytest
import redis
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from issues.delivery.record import sent_messages_record
from issues.feedback.rules import event_apply, events_unapplied
from issues.models import Delivery, DeliveryEvent, Issue
from subscriptions.models import MailingList, Subscriber, Subscription, Suppression
from tests.conftest import child_env, worker_with_beat
from tests.issues.payloads import (
    MAILGUN_SIGNING_KEY,
    PROVIDERS,
    WEBHOOK_SECRET,
    WebhookPost,
    anymail_settings,
    basic_auth,
    sendgrid_batch,
    tracking_post,
)

pytestmark = pytest.mark.django_db

SOFT_TYPES = ("soft_bounced", "deferred")


@pytest.fixture(autouse=True)
def webhook_settings(settings):
    settings.ANYMAIL = anymail_settings()
    settings.SOFT_BOUNCE_LIMIT = 3
    settings.FEEDBACK_INLINE_SECONDS = 30.0
    settings.FEEDBACK_INLINE_EVENTS = 10_000  # every post stored in its request (the queued path: test_pending_events)
    return settings


def make_list(slug: str, **fields) -> MailingList:
    return MailingList.objects.create(
        name=slug.title(), slug=slug, from_name="DWV", from_email=f"{slug}@dwv.example", **fields
    )


def subscribe(subscriber: Subscriber, mailing_list: MailingList) -> Subscription:
    return Subscription.objects.create(
        subscriber=subscriber,
        mailing_list=mailing_list,
        status=Subscription.Status.ACTIVE,
        consent_source=Subscription.ConsentSource.FORM,
        confirmed_at=timezone.now(),
    )


def make_issue(mailing_list: MailingList, title: str = "The issue") -> Issue:
    issue = Issue.objects.create(title=title, body="Body", status=Issue.Status.SENDING)
    issue.lists.add(mailing_list)
    return issue


def make_delivery(issue: Issue, subscriber: Subscriber, mailing_list: MailingList, message_id: str) -> Delivery:
    """A ledger row as the engine leaves it once the provider accepted the message."""
    row = Delivery.objects.create(
        issue=issue,
        subscriber=subscriber,
        mailing_list=mailing_list,
        email=subscriber.email,
        status=Delivery.Status.SENT,
        sent_at=timezone.now(),
        provider_message_id=message_id,
    )
    sent_messages_record(issue.pk, row.sent_at, [row.pk], [message_id])
    return row


@pytest.fixture
def cast():
    """A reader on two lists, and the issue they were sent through the first."""
    news = make_list("news")
    other = make_list("other")
    alice = Subscriber.objects.create(email="alice@example.org", name="Alice")
    subscribe(alice, news)
    subscribe(alice, other)
    issue = make_issue(news)
    delivery = make_delivery(issue, alice, news, "<msg-alice-1@esp.example>")
    return {"news": news, "other": other, "alice": alice, "issue": issue, "delivery": delivery}


def post(client, provider: str, kind: str, delivery: Delivery, **values):
    request = tracking_post(provider, kind, RECIPIENT=delivery.email, MESSAGE_ID=delivery.provider_message_id, **values)
    return request.send(client)


# --- One of each event, from each provider ----------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_delivered_event_is_stored_linked_and_marks_the_delivery_delivered(client, cast, provider):
    response = post(client, provider, "delivered", cast["delivery"])

    assert response.status_code == 200
    event = DeliveryEvent.objects.get()
    assert (event.provider, event.event_type, event.delivery) == (provider, "delivered", cast["delivery"])
    assert event.recipient == "alice@example.org"
    cast["delivery"].refresh_from_db()
    assert cast["delivery"].status == Delivery.Status.DELIVERED
    assert cast["delivery"].delivered_at is not None


@pytest.mark.parametrize("provider", PROVIDERS)
def test_hard_bounce_suppresses_the_address_and_marks_the_delivery_bounced(client, cast, provider):
    response = post(client, provider, "hard_bounce", cast["delivery"])

    assert response.status_code == 200
    event = DeliveryEvent.objects.get()
    assert event.event_type == "bounced"
    suppression = Suppression.objects.get()
    assert (suppression.email, suppression.reason, suppression.event) == (
        "alice@example.org",
        Suppression.Reason.HARD_BOUNCE,
        event,
    )
    cast["delivery"].refresh_from_db()
    assert cast["delivery"].status == Delivery.Status.BOUNCED


@pytest.mark.parametrize("provider", PROVIDERS)
def test_one_soft_bounce_is_recorded_but_suppresses_nothing(client, cast, provider):
    response = post(client, provider, "soft_bounce", cast["delivery"])

    assert response.status_code == 200
    assert DeliveryEvent.objects.get().event_type in SOFT_TYPES
    assert not Suppression.objects.exists()
    cast["delivery"].refresh_from_db()
    assert cast["delivery"].status == Delivery.Status.SENT


@pytest.mark.parametrize("provider", PROVIDERS)
def test_complaint_suppresses_and_unsubscribes_from_every_list(client, cast, provider):
    response = post(client, provider, "complaint", cast["delivery"])

    assert response.status_code == 200
    assert DeliveryEvent.objects.get().event_type == "complained"
    assert Suppression.objects.get().reason == Suppression.Reason.COMPLAINT
    subscriptions = Subscription.objects.filter(subscriber=cast["alice"])
    assert {(s.status, s.unsubscribe_source, s.unsubscribe_issue_id) for s in subscriptions} == {
        ("unsubscribed", "complaint", cast["issue"].pk)
    }
    cast["delivery"].refresh_from_db()
    assert cast["delivery"].status == Delivery.Status.COMPLAINED


@pytest.mark.parametrize("provider", PROVIDERS)
def test_provider_unsubscribe_unsubscribes_from_that_list_only(client, cast, provider):
    response = post(client, provider, "unsubscribe", cast["delivery"])

    assert response.status_code == 200
    assert DeliveryEvent.objects.get().event_type == "unsubscribed"
    news = Subscription.objects.get(subscriber=cast["alice"], mailing_list=cast["news"])
    other = Subscription.objects.get(subscriber=cast["alice"], mailing_list=cast["other"])
    assert (news.status, news.unsubscribe_source, news.unsubscribe_issue_id) == (
        "unsubscribed",
        "esp",
        cast["issue"].pk,
    )
    assert other.status == Subscription.Status.ACTIVE
    assert not Suppression.objects.exists()


def test_sendgrid_blocked_bounce_counts_as_soft(client, cast):
    assert post(client, "sendgrid", "blocked", cast["delivery"]).status_code == 200

    assert DeliveryEvent.objects.get().event_type == "soft_bounced"
    assert not Suppression.objects.exists()


# --- Linking ------------------------------------------------------------------------------


def test_event_links_by_metadata_when_the_message_id_is_unknown(client, cast):
    delivery = cast["delivery"]
    request = tracking_post(
        "mailgun",
        "delivered",
        RECIPIENT=delivery.email,
        MESSAGE_ID="<not-recorded@esp.example>",
        ISSUE_ID=delivery.issue_id,
        SUBSCRIBER_ID=delivery.subscriber_id,
        DELIVERY_ID=delivery.pk,
    )
    assert request.send(client).status_code == 200

    assert DeliveryEvent.objects.get().delivery == delivery


def test_event_links_by_issue_and_subscriber_in_metadata(client, cast):
    delivery = cast["delivery"]
    request = tracking_post(
        "brevo",
        "hard_bounce",
        RECIPIENT=delivery.email,
        MESSAGE_ID="<other@esp.example>",
        ISSUE_ID=delivery.issue_id,
        SUBSCRIBER_ID=delivery.subscriber_id,
    )
    assert request.send(client).status_code == 200

    assert DeliveryEvent.objects.get().delivery == delivery
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.BOUNCED


def test_shared_batch_message_id_links_by_recipient(client, cast):
    bob = Subscriber.objects.create(email="bob@example.org")
    subscribe(bob, cast["news"])
    bobs = make_delivery(cast["issue"], bob, cast["news"], cast["delivery"].provider_message_id)

    assert post(client, "mailgun", "hard_bounce", bobs).status_code == 200

    assert DeliveryEvent.objects.get().delivery == bobs
    assert Suppression.objects.get().email == "bob@example.org"
    cast["delivery"].refresh_from_db()
    assert cast["delivery"].status == Delivery.Status.SENT


def test_unknown_message_is_stored_unlinked_without_error(client):
    request = tracking_post("postmark", "hard_bounce", RECIPIENT="stranger@example.net", MESSAGE_ID="nobody-knows")
    response = request.send(client)

    assert response.status_code == 200
    event = DeliveryEvent.objects.get()
    assert event.delivery is None
    assert event.message_id == "nobody-knows"
    # The provider says the address is dead, so it stays suppressed.
    assert Suppression.objects.get().email == "stranger@example.net"


# --- Replays and arrival order --------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_replayed_event_is_a_no_op(client, cast, provider):
    request = tracking_post(
        provider, "complaint", RECIPIENT="alice@example.org", MESSAGE_ID=cast["delivery"].provider_message_id
    )
    assert request.send(client).status_code == 200
    Subscription.objects.filter(subscriber=cast["alice"]).update(
        status="active", unsubscribed_at=None, unsubscribe_source=""
    )

    # Mailgun's signature token is accepted once: the replay is refused outright.
    assert request.send(client).status_code == (400 if provider == "mailgun" else 200)

    assert DeliveryEvent.objects.count() == 1
    assert Suppression.objects.count() == 1
    # The replay did not unsubscribe the reader again.
    assert Subscription.objects.filter(subscriber=cast["alice"], status="active").count() == 2


def test_replayed_postmark_delivery_without_an_event_id_is_stored_once(client, cast):
    request = tracking_post("postmark", "delivered", RECIPIENT="alice@example.org", MESSAGE_ID="pm-1")
    request.send(client)
    request.send(client)

    event = DeliveryEvent.objects.get()
    assert event.event_id.startswith("sha256:")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_late_delivered_does_not_undo_a_bounce(client, cast, provider):
    post(client, provider, "hard_bounce", cast["delivery"])
    post(client, provider, "delivered", cast["delivery"])

    assert DeliveryEvent.objects.count() == 2
    cast["delivery"].refresh_from_db()
    assert cast["delivery"].status == Delivery.Status.BOUNCED


@pytest.mark.parametrize("first", ["delivered", "complaint"])
def test_delivered_and_complaint_end_complained_in_either_order(client, cast, first):
    second = "complaint" if first == "delivered" else "delivered"
    post(client, "sendgrid", first, cast["delivery"])
    post(client, "sendgrid", second, cast["delivery"])

    cast["delivery"].refresh_from_db()
    assert cast["delivery"].status == Delivery.Status.COMPLAINED
    assert Suppression.objects.get().reason == Suppression.Reason.COMPLAINT


# --- Soft bounces in a row --------------------------------------------------------------


def soft_bounce_issues(client, cast, count: int, *, provider: str = "postmark", start: float | None = None) -> list:
    deliveries = []
    start = start or time.time() - 3600
    for n in range(count):
        issue = make_issue(cast["news"], title=f"Issue {n}")
        delivery = make_delivery(issue, cast["alice"], cast["news"], f"<soft-{n}-{uuid.uuid4().hex}@esp.example>")
        # Two reports about one issue (a retry) still count as one issue.
        for retry in range(2):
            post(client, provider, "soft_bounce", delivery, when=start + n * 60 + retry)
        deliveries.append(delivery)
    return deliveries


@pytest.mark.parametrize("provider", PROVIDERS)
def test_three_issues_soft_bouncing_in_a_row_suppress(client, cast, provider):
    soft_bounce_issues(client, cast, 2, provider=provider)
    assert not Suppression.objects.exists()

    soft_bounce_issues(client, cast, 1, provider=provider, start=time.time() - 60)

    assert Suppression.objects.get().reason == Suppression.Reason.SOFT_BOUNCES


def test_a_delivery_between_soft_bounces_resets_the_run(client, cast):
    start = time.time() - 3600
    soft_bounce_issues(client, cast, 2, start=start)
    post(client, "postmark", "delivered", cast["delivery"], when=start + 600)
    soft_bounce_issues(client, cast, 2, start=start + 1200)

    assert not Suppression.objects.exists()


def test_soft_bounce_limit_is_a_setting(client, cast, settings):
    settings.SOFT_BOUNCE_LIMIT = 1
    post(client, "brevo", "soft_bounce", cast["delivery"])

    assert Suppression.objects.get().reason == Suppression.Reason.SOFT_BOUNCES


# --- Opens and clicks ----------------------------------------------------------------------


def test_opens_are_not_stored_when_the_list_does_not_track(client, cast):
    assert post(client, "mailgun", "opened", cast["delivery"]).status_code == 200

    assert not DeliveryEvent.objects.exists()
    cast["delivery"].refresh_from_db()
    assert cast["delivery"].opened_at is None


def test_opens_are_stored_when_the_list_tracks(client, cast):
    MailingList.objects.filter(pk=cast["news"].pk).update(tracking_enabled=True)

    assert post(client, "sendgrid", "opened", cast["delivery"]).status_code == 200

    assert DeliveryEvent.objects.get().event_type == "opened"
    cast["delivery"].refresh_from_db()
    assert cast["delivery"].opened_at is not None


# --- Authentication and bad input ---------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("auth", [None, "dwvhook:wrong-password", "someone:else"])
def test_missing_or_wrong_credentials_are_refused_and_store_nothing(client, cast, provider, auth):
    request = tracking_post(provider, "hard_bounce", RECIPIENT="alice@example.org", MESSAGE_ID="<x@esp.example>")

    response = request.send(client, auth=auth)

    assert 400 <= response.status_code < 500
    assert not DeliveryEvent.objects.exists()
    assert not Suppression.objects.exists()


def test_mailgun_with_a_wrong_signature_is_refused(client, cast):
    request = tracking_post("mailgun", "hard_bounce", RECIPIENT="alice@example.org")
    body = json.loads(request.body)
    body["signature"]["signature"] = "0" * 64

    response = WebhookPost(request.path, json.dumps(body).encode(), request.content_type).send(client)

    assert response.status_code == 400
    assert not DeliveryEvent.objects.exists()
    assert not Suppression.objects.exists()


def test_mailgun_signed_with_another_key_is_refused(client, settings):
    settings.ANYMAIL = {**anymail_settings(), "MAILGUN_WEBHOOK_SIGNING_KEY": "a-different-key"}
    request = tracking_post("mailgun", "delivered", RECIPIENT="alice@example.org")

    assert request.send(client).status_code == 400
    assert not DeliveryEvent.objects.exists()
    assert MAILGUN_SIGNING_KEY != "a-different-key"


@pytest.mark.parametrize(
    ("provider", "body"),
    [
        ("sendgrid", b"this is not json"),
        ("sendgrid", b'[{"email": "alice@example.org", "timestamp": 1}]'),
        ("postmark", b'{"RecordType": "Bounce", "Type": "HardBounce", "Email": "alice@example.org"'),
        ("brevo", b"\xff\xfe"),
        ("postmark", b"[1, 2, 3]"),
    ],
)
def test_malformed_payload_gets_400_and_stores_nothing(client, cast, provider, body):
    response = WebhookPost(f"/webhooks/{provider}/tracking/", body, "application/json").send(client)

    assert response.status_code == 400
    assert not DeliveryEvent.objects.exists()
    assert not Suppression.objects.exists()


def test_malformed_ses_notification_gets_400(client, cast):
    request = tracking_post("amazon_ses", "hard_bounce", RECIPIENT="alice@example.org")
    broken = request.body.replace(b'\\"bounceType\\"', b'\\"bounceTipe\\"')
    assert broken != request.body

    response = WebhookPost(request.path, broken, request.content_type, request.headers).send(client)

    assert response.status_code == 400
    assert not DeliveryEvent.objects.exists()


def test_ses_header_not_matching_the_body_is_refused(client):
    request = tracking_post("amazon_ses", "delivered", RECIPIENT="alice@example.org")
    request.headers["X-Amz-Sns-Message-Id"] = "another-id"

    assert request.send(client).status_code == 400
    assert not DeliveryEvent.objects.exists()


def test_a_batch_with_one_broken_event_stores_none_of_it(client, cast):
    good = tracking_post("sendgrid", "delivered", RECIPIENT="alice@example.org")
    batch = sendgrid_batch([good, good])
    broken = WebhookPost(
        batch.path, batch.body.replace(b'"event": "delivered"', b'"evnt": "delivered"', 1), batch.content_type
    )

    assert broken.send(client).status_code == 400
    assert not DeliveryEvent.objects.exists()


def test_webhooks_answer_get_with_405(client):
    response = client.get("/webhooks/postmark/tracking/", headers={"Authorization": basic_auth(WEBHOOK_SECRET)})

    assert response.status_code == 405


# --- Volume -------------------------------------------------------------------------------


def test_ten_thousand_events_in_a_row_are_all_processed(client, cast):
    news, issue = cast["news"], cast["issue"]
    subscribers = Subscriber.objects.bulk_create([Subscriber(email=f"reader{n:05d}@example.org") for n in range(5000)])
    deliveries = Delivery.objects.bulk_create(
        [
            Delivery(
                issue=issue,
                subscriber=s,
                mailing_list=news,
                email=s.email,
                status=Delivery.Status.SENT,
                sent_at=timezone.now(),
                provider_message_id=f"<bulk-{s.pk}@esp.example>",
            )
            for s in subscribers
        ]
    )
    deliveries = list(Delivery.objects.filter(email__startswith="reader").order_by("pk"))
    sent_messages_record(
        issue.pk, timezone.now(), [d.pk for d in deliveries], [d.provider_message_id for d in deliveries]
    )
    events = []
    for delivery in deliveries:
        events.append(
            tracking_post("sendgrid", "delivered", RECIPIENT=delivery.email, MESSAGE_ID=delivery.provider_message_id)
        )
        kind = "hard_bounce" if delivery.pk % 10 == 0 else "opened"
        events.append(
            tracking_post("sendgrid", kind, RECIPIENT=delivery.email, MESSAGE_ID=delivery.provider_message_id)
        )
    for start in range(0, len(events), 250):
        response = sendgrid_batch(events[start : start + 250]).send(client)
        assert response.status_code == 200

    bounced = sum(1 for d in deliveries if d.pk % 10 == 0)
    # Opens are not kept for this list (no tracking): everything else is.
    assert DeliveryEvent.objects.count() == 5000 + bounced
    assert Delivery.objects.filter(email__startswith="reader", status="bounced").count() == bounced
    assert Delivery.objects.filter(email__startswith="reader", status="delivered").count() == 5000 - bounced
    assert Suppression.objects.count() == bounced


def test_storing_an_event_takes_a_bounded_number_of_queries(client, cast):
    request = tracking_post(
        "sendgrid", "delivered", RECIPIENT="alice@example.org", MESSAGE_ID=cast["delivery"].provider_message_id
    )
    with CaptureQueriesContext(connection) as queries:
        request.send(client)

    assert len(queries) <= 10


# --- Over real HTTP ----------------------------------------------------------------------------


def http_post(live_server, request: WebhookPost, *, auth: str | None = WEBHOOK_SECRET) -> int:
    headers = {"Content-Type": request.content_type, **request.headers}
    if auth:
        headers["Authorization"] = basic_auth(auth)
    http_request = urllib.request.Request(
        live_server.url + request.path, data=request.body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(http_request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_events_over_real_http_with_basic_auth(live_server, cast, provider):
    delivery = cast["delivery"]

    def event(kind):
        return tracking_post(provider, kind, RECIPIENT=delivery.email, MESSAGE_ID=delivery.provider_message_id)

    assert http_post(live_server, event("delivered"), auth=None) in (400, 401)
    assert http_post(live_server, event("delivered"), auth="dwvhook:nope") in (400, 401)
    assert not DeliveryEvent.objects.exists()

    bounce = event("hard_bounce")
    assert http_post(live_server, event("delivered")) == 200
    assert http_post(live_server, bounce) == 200
    # A replay: a no-op, or refused outright where the signature is single-use (Mailgun).
    assert http_post(live_server, bounce) == (400 if provider == "mailgun" else 200)

    assert DeliveryEvent.objects.count() == 2
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.BOUNCED
    assert Suppression.objects.get().reason == Suppression.Reason.HARD_BOUNCE


# --- Slow effects go to Celery ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_effects_beyond_the_inline_budget_are_applied_by_a_celery_worker(client, cast, celery_worker, settings):
    settings.FEEDBACK_INLINE_SECONDS = 0  # every effect is queued
    delivery = cast["delivery"]
    complaint = tracking_post("mailgun", "complaint", RECIPIENT=delivery.email, MESSAGE_ID=delivery.provider_message_id)

    assert complaint.send(client).status_code == 200
    assert DeliveryEvent.objects.count() == 1  # stored at once

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not Suppression.objects.exists():
        time.sleep(0.2)
    assert Suppression.objects.get().reason == Suppression.Reason.COMPLAINT
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.COMPLAINED
    assert not Subscription.objects.filter(subscriber=cast["alice"], status="active").exists()


def test_an_event_is_applied_once_and_marked_so(client, cast, settings):
    settings.FEEDBACK_INLINE_SECONDS = 0  # stored, its effects queued (no worker runs here)
    delivery = cast["delivery"]
    complaint = tracking_post("mailgun", "complaint", RECIPIENT=delivery.email, MESSAGE_ID=delivery.provider_message_id)
    assert complaint.send(client).status_code == 200
    event = DeliveryEvent.objects.get()
    assert event.applied_at is None and not Suppression.objects.exists()
    assert events_unapplied(older_than=60) == []  # its task may still be in the queue
    assert events_unapplied(older_than=0) == [event.pk]

    event_apply(event_id=event.pk)
    event.refresh_from_db()
    assert event.applied_at is not None and Suppression.objects.count() == 1
    assert events_unapplied(older_than=0) == []

    # The reader comes back; the same event applied again (a redelivered task) changes nothing.
    Subscription.objects.filter(subscriber=cast["alice"]).update(
        status=Subscription.Status.ACTIVE, unsubscribed_at=None, unsubscribe_source=""
    )
    event_apply(event_id=event.pk)
    assert Subscription.objects.filter(subscriber=cast["alice"], status="active").count() == 2


@pytest.mark.django_db(transaction=True)
def test_effects_whose_queued_task_was_lost_are_applied_by_the_sweep(client, cast, settings):
    settings.FEEDBACK_INLINE_SECONDS = 0
    delivery = cast["delivery"]
    bounce = tracking_post("sendgrid", "hard_bounce", RECIPIENT=delivery.email, MESSAGE_ID=delivery.provider_message_id)
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    queued = broker.llen("default")

    assert bounce.send(client).status_code == 200
    assert broker.llen("default") == queued + 1
    # The broker forgets its queue, as a Redis restart without persistence does.
    broker.delete(*broker.keys("default*"))
    worker = worker_with_beat(env=child_env(FEEDBACK_SWEEP_AFTER="0", FEEDBACK_SWEEP_INTERVAL="1"), name="feedback")
    try:
        worker.wait_ready()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not Suppression.objects.exists():
            time.sleep(0.2)
    finally:
        worker.stop()
    assert Suppression.objects.get().reason == Suppression.Reason.HARD_BOUNCE
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.BOUNCED
    assert DeliveryEvent.objects.get().applied_at is not None


@pytest.mark.django_db
def test_webhooks_refuse_everything_when_no_credential_is_configured(client, settings):
    settings.ANYMAIL = {key: value for key, value in settings.ANYMAIL.items() if key != "WEBHOOK_SECRET"}
    settings.ANYMAIL.update(MAILJET_API_KEY="k", SPARKPOST_API_KEY="k")  # configured, so their endpoints answer
    for provider in ("postmark", "brevo", "sendgrid", "mailjet", "sparkpost"):
        response = client.post(f"/webhooks/{provider}/tracking/", data="[]", content_type="application/json")
        assert response.status_code == 403, provider
        assert b"not configured" in response.content
    assert DeliveryEvent.objects.count() == 0

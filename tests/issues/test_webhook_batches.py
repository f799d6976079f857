"""A request's events taken in together: few statements, and the same results in any order, replayed or not."""

from __future__ import annotations

import json
import threading
import urllib.request
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from issues.delivery.record import sent_messages_record
from issues.models import Delivery, DeliveryEvent, Issue
from subscriptions.models import MailingList, Subscriber, Subscription, Suppression
from tests.issues.payloads import WEBHOOK_SECRET, WebhookPost, anymail_settings, basic_auth
from tests.issues.payloads.documented import documented_post

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def webhook_settings(settings):
    settings.ANYMAIL = anymail_settings()
    settings.FEEDBACK_INLINE_SECONDS = 30.0
    settings.FEEDBACK_INLINE_EVENTS = 10_000  # every post stored in its request (the queued path: test_pending_events)


def ledger(count: int, *, shared_id: str | None = None, tracking: bool = False) -> list[Delivery]:
    """An issue sent to `count` readers: one provider id each, or one shared by the batch."""
    news = MailingList.objects.create(
        name="News", slug=f"news-{uuid.uuid4().hex[:6]}", from_name="DWV", from_email="news@dwv.example",
        tracking_enabled=tracking,
    )  # fmt: skip
    issue = Issue.objects.create(title="The issue", body="Body", status=Issue.Status.SENDING)
    issue.lists.add(news)
    readers = Subscriber.objects.bulk_create([Subscriber(email=f"r{n:04d}@example.org") for n in range(count)])
    now = timezone.now()
    Subscription.objects.bulk_create(
        [
            Subscription(subscriber=r, mailing_list=news, status="active", consent_source="form", confirmed_at=now)
            for r in readers
        ]
    )
    Delivery.objects.bulk_create(
        [
            Delivery(issue=issue, subscriber=r, mailing_list=news, email=r.email, status="sent", sent_at=now,
                     provider_message_id=shared_id or f"<{uuid.uuid4().hex}@esp.example>")
            for r in readers
        ]
    )  # fmt: skip
    rows = list(Delivery.objects.filter(issue=issue).order_by("pk"))
    sent_messages_record(issue.pk, now, [r.pk for r in rows], [r.provider_message_id for r in rows])
    return rows


def sendgrid(rows_and_names: list[tuple[Delivery, str]]) -> WebhookPost:
    items = []
    for row, name in rows_and_names:
        items += json.loads(
            documented_post("sendgrid", name, recipient=row.email, message_id=row.provider_message_id).body
        )
    return WebhookPost("/webhooks/sendgrid/tracking/", json.dumps(items).encode(), "application/json")


def test_a_thousand_events_are_stored_and_applied_in_a_few_statements(client):
    rows = ledger(1000)

    with CaptureQueriesContext(connection) as queries:
        assert sendgrid([(row, "delivered") for row in rows]).send(client).status_code == 200

    assert DeliveryEvent.objects.filter(event_type="delivered", delivery__isnull=False).count() == 1000
    assert Delivery.objects.filter(status="delivered", delivered_at__isnull=False).count() == 1000
    assert len(queries) <= 8, [q["sql"][:80] for q in queries]


def test_a_mixed_batch_takes_a_few_statements_per_kind(client):
    rows = ledger(400)
    names = ["delivered", "bounce", "deferred", "dropped"]
    post = sendgrid(
        [(row, names[n % 4]) for n, row in enumerate(rows[:40])] + [(row, "delivered") for row in rows[40:]]
    )
    with CaptureQueriesContext(connection) as queries:
        assert post.send(client).status_code == 200

    assert Delivery.objects.filter(status="bounced").count() == 10
    assert Suppression.objects.filter(reason="hard_bounce").count() == 10
    assert Delivery.objects.filter(status="failed").count() == 10  # dropped: refused, never sent
    assert Delivery.objects.filter(status="delivered").count() == 370
    # Delivered, bounced: one statement each, whatever their number; the ten
    # soft bounces and ten refusals go through their rules one by one.
    assert len(queries) <= 10 + 10 * 4 + 10 * 3


@pytest.mark.parametrize("order", [("delivered", "bounce"), ("bounce", "delivered")])
def test_delivered_and_bounce_in_one_batch_end_bounced_in_either_order(client, order):
    (row,) = ledger(1)

    sendgrid([(row, order[0]), (row, order[1])]).send(client)

    row.refresh_from_db()
    assert row.status == "bounced"
    assert DeliveryEvent.objects.count() == 2


def test_open_and_click_in_one_batch_set_both_times_once(client):
    (row,) = ledger(1, tracking=True)

    sendgrid([(row, "click"), (row, "open"), (row, "delivered")]).send(client)
    row.refresh_from_db()
    first = (row.opened_at, row.clicked_at, row.delivered_at)
    sendgrid([(row, "open"), (row, "click")]).send(client)  # later opens and clicks

    row.refresh_from_db()
    assert row.status == "delivered"
    assert None not in first
    assert (row.opened_at, row.clicked_at, row.delivered_at) == first


def test_the_same_event_twice_in_one_post_and_the_post_replayed_are_stored_once(client):
    rows = ledger(3)
    post = sendgrid([(rows[0], "delivered"), (rows[1], "spamreport"), (rows[2], "delivered")])
    body = json.loads(post.body)
    doubled = WebhookPost(post.path, json.dumps(body + body).encode(), post.content_type)

    assert doubled.send(client).status_code == 200
    Subscription.objects.update(status="active", unsubscribed_at=None, unsubscribe_source="", unsubscribe_issue=None)
    assert doubled.send(client).status_code == 200

    assert DeliveryEvent.objects.count() == 3
    assert Suppression.objects.count() == 1
    assert Subscription.objects.filter(status="active").count() == 3  # the replay unsubscribed nobody again


def test_a_batch_shared_message_id_without_metadata_finds_each_reader_by_address(client):
    rows = ledger(50, shared_id="<20251129.batch@mg.example>")

    sendgrid([(row, "delivered") for row in rows[10:20]]).send(client)

    linked = set(DeliveryEvent.objects.values_list("delivery_id", flat=True))
    assert linked == {row.pk for row in rows[10:20]}
    assert Delivery.objects.filter(status="delivered").count() == 10


def test_tampered_metadata_does_not_move_an_event_to_another_reader(client):
    rows = ledger(2)
    body = json.loads(documented_post("sendgrid", "bounce", recipient=rows[0].email,
                                      message_id=rows[0].provider_message_id).body)  # fmt: skip
    body[0]["delivery_id"] = str(rows[1].pk)  # the message id and address say rows[0]

    WebhookPost("/webhooks/sendgrid/tracking/", json.dumps(body).encode(), "application/json").send(client)

    assert DeliveryEvent.objects.get().delivery_id == rows[0].pk
    rows[1].refresh_from_db()
    assert rows[1].status == "sent"


@pytest.mark.django_db(transaction=True)
def test_the_same_batch_posted_at_once_by_two_clients_is_stored_and_applied_once(live_server):
    rows = ledger(200)
    post = sendgrid([(row, "delivered") for row in rows[:100]] + [(row, "bounce") for row in rows[100:]])
    statuses = []

    def send():
        request = urllib.request.Request(
            live_server.url + post.path, data=post.body,
            headers={"Content-Type": post.content_type, "Authorization": basic_auth(WEBHOOK_SECRET)},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=60) as response:
            statuses.append(response.status)

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200, 200]
    assert DeliveryEvent.objects.count() == 200
    assert Delivery.objects.filter(status="delivered").count() == 100
    assert Delivery.objects.filter(status="bounced").count() == 100
    assert Suppression.objects.count() == 100


def test_hostile_values_in_a_batch_are_stored_safely_and_break_nothing(client):
    rows = ledger(2)
    body = json.loads(sendgrid([(rows[0], "bounce"), (rows[1], "delivered")]).body)
    body[0]["reason"] = "550 nul\u0000 byte, ünïcödé, " + "x" * 10_000
    body[0]["sg_event_id"] = "id-with-nul\u0000"
    body[1]["extra"] = {"nested": ["\u0000", "'; DROP TABLE issues_delivery; --", 1e308]}
    post = WebhookPost("/webhooks/sendgrid/tracking/", json.dumps(body).encode(), "application/json")

    assert post.send(client).status_code == 200

    bounce = DeliveryEvent.objects.get(event_type="bounced")
    assert "\x00" not in bounce.description and "ünïcödé" in bounce.description
    assert len(bounce.description) == 2000
    assert "\x00" not in bounce.event_id
    assert Delivery.objects.filter(status="delivered").count() == 1
    assert Suppression.objects.get().email == rows[0].email


def test_a_batch_shared_id_finds_a_reader_whose_address_changed_since_the_send(client):
    rows = ledger(20, shared_id="<20251129.batch2@mg.example>")
    Subscriber.objects.filter(pk=rows[5].subscriber_id).update(email="new-address@example.org")

    sendgrid([(rows[5], "bounce")]).send(client)  # the provider reports the address it was sent to

    assert DeliveryEvent.objects.get().delivery_id == rows[5].pk
    rows[5].refresh_from_db()
    assert rows[5].status == "bounced"


def test_events_whose_effects_fail_are_still_stored_and_left_for_a_worker(client, monkeypatch, settings):
    from django.db import OperationalError

    from issues.feedback import effects

    def deadlocked(*args, **kwargs):  # what PostgreSQL answers a deadlock with
        raise OperationalError("deadlock detected")

    # Complaints are applied set-wise, with the request's other events.
    monkeypatch.setitem(effects.GROUPED, "complained", deadlocked)
    rows = ledger(2)

    response = sendgrid([(rows[0], "spamreport"), (rows[1], "delivered")]).send(client)

    assert response.status_code == 200
    assert DeliveryEvent.objects.count() == 2
    assert DeliveryEvent.objects.filter(applied_at__isnull=True).count() == 2  # all or nothing, then the sweep
    assert not Suppression.objects.exists()

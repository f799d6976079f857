"""Provider events waiting in Redis: stored in groups by whoever drains, each once, none lost."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import pytest
import redis
from django.test import Client

from dwvlist.redis import FEEDBACK_DRAIN_QUEUED, FEEDBACK_PENDING, redis_client
from issues.feedback import pending
from issues.feedback.tasks import sweep_unapplied_events
from issues.models import Delivery, DeliveryEvent
from subscriptions.models import Suppression
from tests.issues.payloads import WEBHOOK_SECRET, WebhookPost, anymail_settings, basic_auth
from tests.issues.payloads.documented import documented_post
from tests.issues.test_webhook_batches import ledger, sendgrid

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def webhook_settings(settings):
    settings.ANYMAIL = anymail_settings()
    settings.FEEDBACK_INLINE_SECONDS = 30.0
    settings.FEEDBACK_INLINE_EVENTS = 100


def incoming(row: Delivery, name: str = "delivered"):
    from anymail.signals import AnymailTrackingEvent

    from issues.feedback.intake import incoming_from

    event = AnymailTrackingEvent(
        event_type=name, recipient=row.email, message_id=row.provider_message_id, event_id=f"ev-{row.pk}",
        esp_event={"event": name, "email": row.email},
    )  # fmt: skip
    return incoming_from(provider="sendgrid", event=event)


def waiting() -> int:
    return redis_client().xlen(FEEDBACK_PENDING)


def until(condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def http_post(url: str, post: WebhookPost) -> int:
    request = urllib.request.Request(
        url + post.path, data=post.body,
        headers={"Content-Type": post.content_type, "Authorization": basic_auth(WEBHOOK_SECRET)},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status


def test_a_quiet_servers_single_event_is_stored_and_applied_before_the_answer(client):
    (row,) = ledger(1)

    assert sendgrid([(row, "bounce")]).send(client).status_code == 200

    row.refresh_from_db()
    assert row.status == "bounced"
    assert Suppression.objects.get().email == row.email
    assert waiting() == 0


def metrics_scrape(settings) -> str:
    settings.METRICS_TOKEN = "t" * 32
    settings.METRICS_ALLOWED_IPS = []
    return Client().get("/metrics", HTTP_AUTHORIZATION="Bearer " + "t" * 32).content.decode()


def test_a_large_post_waits_in_redis_and_one_drain_stores_it_once(client, settings):
    rows = ledger(300)
    post = sendgrid([(row, "delivered") for row in rows[:250]] + [(row, "bounce") for row in rows[250:]])

    assert post.send(client).status_code == 200
    assert DeliveryEvent.objects.count() == 0  # over FEEDBACK_INLINE_EVENTS: answered at once
    assert waiting() == 300
    assert "dwvlist_webhook_events_waiting 300.0" in metrics_scrape(settings)
    assert redis_client().exists(f"{FEEDBACK_DRAIN_QUEUED}:0")  # a drain task is queued
    assert post.send(client).status_code == 200  # the provider's retry of the same post
    assert waiting() == 600
    assert not redis_client().exists(f"{FEEDBACK_DRAIN_QUEUED}:1")  # the queued drain takes these too

    assert pending.events_drain(slot=0) == 600

    assert waiting() == 0 and not redis_client().exists(f"{FEEDBACK_DRAIN_QUEUED}:0")
    assert DeliveryEvent.objects.count() == 300
    assert Delivery.objects.filter(status="delivered").count() == 250
    assert Delivery.objects.filter(status="bounced").count() == 50
    assert Suppression.objects.count() == 50


def test_a_request_that_finds_other_events_waiting_leaves_its_own_to_the_drain(client):
    rows = ledger(2)
    redis_client().xadd(FEEDBACK_PENDING, {"e": pending._encode(incoming(rows[0]))})

    assert sendgrid([(rows[1], "bounce")]).send(client).status_code == 200
    assert not DeliveryEvent.objects.exists() and waiting() == 2

    pending.events_drain(slot=0)
    assert waiting() == 0
    assert sorted(Delivery.objects.values_list("status", flat=True)) == ["bounced", "delivered"]


def test_a_drain_that_dies_after_storing_is_repeated_without_applying_anything_twice(client, monkeypatch):
    rows = ledger(120)
    post = sendgrid([(row, "bounce") for row in rows[:20]] + [(row, "delivered") for row in rows[20:]])
    assert post.send(client).status_code == 200
    assert waiting() == 120

    real_xdel = redis.Redis.xdel
    monkeypatch.setattr(redis.Redis, "xdel", lambda *args: (_ for _ in ()).throw(redis.ConnectionError("cut")))
    with pytest.raises(redis.ConnectionError):
        pending.events_drain(slot=0)
    monkeypatch.setattr(redis.Redis, "xdel", real_xdel)
    stored = {e.pk: e.applied_at for e in DeliveryEvent.objects.all()}
    assert len(stored) == 120 and waiting() == 120  # stored and applied, still on the stream
    suppressed = {s.pk: s.created_at for s in Suppression.objects.all()}
    assert len(suppressed) == 20

    # The next drain claims them once they have been left idle long enough.
    monkeypatch.setattr(pending, "_STALE_MS", 0)
    assert pending.events_drain(slot=0) == 120

    assert waiting() == 0
    assert {e.pk: e.applied_at for e in DeliveryEvent.objects.all()} == stored
    assert {s.pk: s.created_at for s in Suppression.objects.all()} == suppressed
    assert Delivery.objects.filter(status="delivered").count() == 100
    assert Delivery.objects.filter(status="bounced").count() == 20


def test_without_redis_the_request_stores_its_events_itself(client, settings):
    (row,) = ledger(1)
    with socket_closed() as url:
        settings.REDIS_URL = url
        assert sendgrid([(row, "bounce")]).send(client).status_code == 200
    row.refresh_from_db()
    assert row.status == "bounced"


def test_the_sweep_drains_what_a_lost_task_left_waiting(client):
    rows = ledger(150)
    assert sendgrid([(row, "delivered") for row in rows]).send(client).status_code == 200
    redis_client().delete(f"{FEEDBACK_DRAIN_QUEUED}:0")  # its task lost with the broker

    sweep_unapplied_events()

    assert waiting() == 0
    assert Delivery.objects.filter(status="delivered").count() == 150


def test_an_unreadable_entry_is_logged_and_does_not_hold_up_the_others(client, caplog):
    (row,) = ledger(1)
    redis_client().xadd(FEEDBACK_PENDING, {"e": b"{not json"})
    body = json.loads(sendgrid([(row, "delivered")]).body)
    assert (
        WebhookPost("/webhooks/sendgrid/tracking/", json.dumps(body).encode(), "application/json")
        .send(client)
        .status_code
        == 200
    )

    pending.events_drain(slot=0)

    assert waiting() == 0
    row.refresh_from_db()
    assert row.status == "delivered"
    assert "{not json" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_single_event_posts_from_many_clients_is_stored_by_a_real_worker(live_server, celery_worker):
    rows = ledger(200)
    posts = [
        documented_post("sendgrid", "bounce" if n % 10 == 0 else "delivered", recipient=row.email,
                        message_id=row.provider_message_id)
        for n, row in enumerate(rows)
    ]  # fmt: skip
    statuses: list[int] = []
    lock = threading.Lock()

    def client_thread(chunk):
        for post in chunk:
            status = http_post(live_server.url, post)
            with lock:
                statuses.append(status)

    threads = [threading.Thread(target=client_thread, args=(posts[n::8],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 200

    until(lambda: Delivery.objects.filter(status__in=("delivered", "bounced")).count() == 200)
    until(lambda: waiting() == 0)
    assert DeliveryEvent.objects.count() == 200
    assert Delivery.objects.filter(status="bounced").count() == 20
    assert Suppression.objects.count() == 20


class socket_closed:
    """A Redis URL where nothing listens (a port bound and never accepted on)."""

    def __enter__(self) -> str:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return f"redis://127.0.0.1:{self.sock.getsockname()[1]}/0"

    def __exit__(self, *exc) -> None:
        self.sock.close()


def test_a_drain_that_takes_a_full_group_calls_another_to_drain_beside_it(client, settings):
    settings.FEEDBACK_DRAIN_BATCH = 50
    rows = ledger(150)
    assert sendgrid([(row, "delivered") for row in rows]).send(client).status_code == 200
    assert not redis_client().exists(f"{FEEDBACK_DRAIN_QUEUED}:1")

    assert pending.events_drain(slot=0) == 150

    assert redis_client().exists(f"{FEEDBACK_DRAIN_QUEUED}:1")  # queued when the first full group came
    assert Delivery.objects.filter(status="delivered").count() == 150


def test_when_nothing_has_drained_for_a_while_a_request_stores_its_own_events(client):
    rows = ledger(2)
    # An event waiting since long ago, its drain queued and never run (no worker).
    redis_client().xadd(FEEDBACK_PENDING, {"e": pending._encode(incoming(rows[0]))}, id="1-0")
    redis_client().set(f"{FEEDBACK_DRAIN_QUEUED}:0", "nobody", ex=60)

    assert sendgrid([(rows[1], "bounce")]).send(client).status_code == 200

    rows[1].refresh_from_db()
    assert rows[1].status == "bounced"  # stored before the answer
    assert waiting() == 1  # the old one still waits for a drain

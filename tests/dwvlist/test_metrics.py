"""/metrics: who may read it, what it says, and that it keeps answering when part of it cannot."""

from __future__ import annotations

import logging
import time

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from dwvlist.metrics import metric_add, metric_observe
from issues.delivery.record import sent_messages_record
from issues.models import Delivery, Issue
from subscriptions.models import ImportJob, MailingList, Subscriber, Subscription, Suppression
from subscriptions.suppressions import suppression_add
from tests.issues.payloads import anymail_settings, tracking_post

pytestmark = pytest.mark.django_db
TOKEN = "a-long-enough-scrape-token-1234"


def _samples(response) -> dict[str, dict[tuple, float]]:
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def _scrape(**headers):
    return Client(**headers).get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_IPS = []
    return settings


def test_metrics_is_a_404_for_everyone_when_neither_token_nor_addresses_are_set(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = []
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


@pytest.mark.parametrize(
    "authorization",
    ["", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", TOKEN, "Bearer", "Bearer ünïcode-tökén"],
)
def test_metrics_refuses_a_wrong_or_missing_token_with_404(client, token, authorization):
    response = client.get("/metrics", HTTP_AUTHORIZATION=authorization)
    assert response.status_code == 404
    assert b"dwvlist_" not in response.content


def test_metrics_answers_the_bearer_token_in_the_prometheus_format(token):
    response = _scrape()
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    samples = _samples(response)
    assert samples["dwvlist_issues"][(("status", "draft"),)] == 0


@pytest.mark.parametrize(
    ("allowed", "address", "status"),
    [
        (["127.0.0.1"], "127.0.0.1", 200),
        (["10.0.0.0/8"], "10.20.30.40", 200),
        (["10.0.0.0/8"], "11.0.0.1", 404),
        (["::1"], "::1", 200),
        (["2001:db8::/32"], "2001:db8::7", 200),
        (["192.168.1.0/24"], "not-an-address", 404),
    ],
)
def test_metrics_answers_addresses_in_the_allowed_list(settings, allowed, address, status):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = allowed
    assert Client(REMOTE_ADDR=address).get("/metrics").status_code == status


def test_metrics_refuses_anything_but_get(token):
    response = Client().post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 405


def test_metrics_reports_the_tables_by_status_and_reason(token):
    news = MailingList.objects.create(name="News", slug="news", from_name="N", from_email="n@example.org")
    reader = Subscriber.objects.create(email="a@example.org")
    Subscription.objects.create(
        subscriber=reader, mailing_list=news, status="active", consent_source="form", confirmed_at=timezone.now()
    )
    suppression_add(email="b@example.org", reason=Suppression.Reason.COMPLAINT)
    suppression_add(email="c@example.org", reason=Suppression.Reason.COMPLAINT)
    suppression_add(email="d@example.org", reason=Suppression.Reason.MANUAL)
    ImportJob.objects.create(mailing_list=news, file_name="x.csv", file_path="/x", consent="given", status="done")
    issue = Issue.objects.create(title="T", body="B", status=Issue.Status.SENDING, started_at=timezone.now())
    for n, status in enumerate(["sent", "sent", "failed", "pending"]):
        Delivery.objects.create(
            issue=issue,
            email=f"r{n}@example.org",
            status=status,
            sent_at=timezone.now() if status == "sent" else None,
        )
    samples = _samples(_scrape())
    assert samples["dwvlist_suppressions"][(("reason", "complaint"),)] == 2
    assert samples["dwvlist_suppressions"][(("reason", "manual"),)] == 1
    assert samples["dwvlist_suppressions"][(("reason", "hard_bounce"),)] == 0
    assert samples["dwvlist_suppressions_added_total"][(("reason", "complaint"),)] == 2
    assert samples["dwvlist_subscriptions"][(("list", "news"), ("status", "active"))] == 1
    assert samples["dwvlist_imports"][(("status", "done"),)] == 1
    deliveries = {
        dict(labels)["status"]: value
        for labels, value in samples["dwvlist_deliveries"].items()
        if dict(labels)["issue_id"] == str(issue.pk)
    }
    assert (deliveries["sent"], deliveries["failed"], deliveries["pending"], deliveries["delivered"]) == (2, 1, 1, 0)


def test_counters_and_summaries_add_up_across_calls_with_their_labels(token):
    metric_add("dwvlist_messages", 5, provider="smtp", outcome="sent")
    metric_add("dwvlist_messages", 2, outcome="sent", provider="smtp")  # the order of labels does not matter
    metric_add("dwvlist_messages", 1, provider="smtp", outcome="failed")
    metric_observe("dwvlist_batch_duration_seconds", 0.5, provider="smtp")
    metric_observe("dwvlist_batch_duration_seconds", 1.5, provider="smtp")
    samples = _samples(_scrape())
    assert samples["dwvlist_messages_total"][(("outcome", "sent"), ("provider", "smtp"))] == 7
    assert samples["dwvlist_messages_total"][(("outcome", "failed"), ("provider", "smtp"))] == 1
    assert samples["dwvlist_batch_duration_seconds_count"][(("provider", "smtp"),)] == 2
    assert samples["dwvlist_batch_duration_seconds_sum"][(("provider", "smtp"),)] == 2.0


def test_an_unknown_counter_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown counter"):
        metric_add("dwvlist_typo")


def test_a_collector_that_fails_is_reported_down_and_the_rest_still_answer(token, settings, caplog):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    with caplog.at_level(logging.ERROR):
        response = _scrape()
    assert response.status_code == 200
    samples = _samples(response)
    assert samples["dwvlist_metrics_collector_up"][(("collector", "RedisCollector"),)] == 0
    assert samples["dwvlist_metrics_collector_up"][(("collector", "IssuesCollector"),)] == 1
    assert "dwvlist_issues" in samples
    assert "metrics collector RedisCollector failed" in caplog.text


def test_a_webhook_request_is_logged_once_and_counted_by_event_type(token, settings, client, caplog):
    settings.ANYMAIL = anymail_settings()
    news = MailingList.objects.create(name="News", slug="news", from_name="N", from_email="n@example.org")
    reader = Subscriber.objects.create(email="alice@example.org")
    issue = Issue.objects.create(title="T", body="B", status=Issue.Status.SENT, sent_at=timezone.now())
    row = Delivery.objects.create(
        issue=issue,
        subscriber=reader,
        mailing_list=news,
        email=reader.email,
        status="sent",
        sent_at=timezone.now(),
        provider_message_id="<m1@esp.example>",
    )
    sent_messages_record(issue.pk, row.sent_at, [row.pk], ["<m1@esp.example>"])
    event = {"RECIPIENT": reader.email, "MESSAGE_ID": "<m1@esp.example>", "EVENT_ID": "ev-1", "when": time.time()}
    post = tracking_post("mailgun", "hard_bounce", **event)
    again = tracking_post("mailgun", "hard_bounce", **event)  # the same event, signed again with a new token
    with caplog.at_level(logging.INFO):
        assert post.send(client).status_code == 200
        assert again.send(client).status_code == 200  # stored once
    requests = [r for r in caplog.records if r.name == "issues.feedback.webhooks" and "webhook:" in r.getMessage()]
    assert [(r.events, r.stored, r.applied, r.queued) for r in requests] == [(1, 1, 1, 0), (1, 0, 0, 0)]
    (suppressed,) = [r for r in caplog.records if r.getMessage().startswith("suppressed ")]
    assert suppressed.reason == "hard_bounce"
    samples = _samples(_scrape())
    assert samples["dwvlist_webhook_requests_total"][(("provider", "mailgun"),)] == 2
    assert samples["dwvlist_webhook_events_total"][(("event_type", "bounced"), ("provider", "mailgun"))] == 1
    assert samples["dwvlist_webhook_event_lag_seconds_count"][(("provider", "mailgun"),)] == 1
    assert samples["dwvlist_webhook_events_unapplied"][()] == 0
    assert samples["dwvlist_webhook_events_waiting"][()] == 0

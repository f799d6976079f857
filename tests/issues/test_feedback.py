"""The feedback services: event ids, classification, and the report's figures."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from issues.feedback.events import event_classify, event_key, provider_name
from issues.models import Delivery, Issue
from issues.selectors import issue_report
from subscriptions.models import MailingList, Subscriber, Subscription
from subscriptions.unsubscribing import subscription_unsubscribe

pytestmark = pytest.mark.django_db


def test_event_key_is_stable_for_the_same_payload_and_differs_per_recipient():
    payload = {"RecordType": "Delivery", "MessageID": "m1", "Recipient": "a@example.org"}

    first = event_key(event_id=None, payload=payload, recipient="a@example.org")
    again = event_key(event_id=None, payload=dict(reversed(list(payload.items()))), recipient="A@example.org")
    other = event_key(event_id=None, payload=payload, recipient="b@example.org")

    assert first == again
    assert first != other
    assert first.startswith("sha256:")


def test_event_key_keeps_the_provider_id_and_fits_the_column():
    assert event_key(event_id="abc", payload={}, recipient="a@example.org") == "abc|a@example.org"
    assert len(event_key(event_id="x" * 300, payload={}, recipient="a@example.org")) <= 255


def test_provider_names_are_slugs():
    assert provider_name("Amazon SES") == "amazon_ses"
    assert provider_name("SendGrid") == "sendgrid"


@pytest.mark.parametrize(
    ("provider", "payload", "expected"),
    [
        ("postmark", {"Type": "SoftBounce"}, "soft_bounced"),
        ("postmark", {"Type": "HardBounce"}, "bounced"),
        ("brevo", {"event": "soft_bounce"}, "soft_bounced"),
        ("brevo", {"event": "hard_bounce"}, "bounced"),
        ("sendgrid", {"type": "blocked"}, "soft_bounced"),
        ("sendgrid", {"type": "bounce"}, "bounced"),
        ("amazon_ses", {"bounce": {"bounceType": "Transient"}}, "soft_bounced"),
        ("amazon_ses", {"bounce": {"bounceType": "Permanent"}}, "bounced"),
        ("mailgun", {}, "bounced"),
    ],
)
def test_bounces_are_classified_hard_or_soft_from_the_provider_fields(provider, payload, expected):
    assert event_classify(provider=provider, event_type="bounced", payload=payload) == expected


@pytest.fixture
def sent_issue():
    news = MailingList.objects.create(name="News", slug="news", from_name="DWV", from_email="list@dwv.example")
    issue = Issue.objects.create(title="Issue", body="Body", status=Issue.Status.SENDING)
    issue.lists.add(news)
    statuses = ["sent"] * 4 + ["delivered"] * 3 + ["bounced"] * 2 + ["complained", "failed", "pending"]
    now = timezone.now()
    for n, status in enumerate(statuses):
        subscriber = Subscriber.objects.create(email=f"r{n}@example.org")
        Subscription.objects.create(
            subscriber=subscriber,
            mailing_list=news,
            status="active",
            consent_source="form",
            confirmed_at=now,
        )
        Delivery.objects.create(
            issue=issue,
            subscriber=subscriber,
            mailing_list=news,
            email=subscriber.email,
            status=status,
            sent_at=None if status in ("failed", "pending") else now,
            opened_at=now if n in (4, 5) else None,
            clicked_at=now if n == 4 else None,
        )
    subscription_unsubscribe(
        subscriber_id=Subscriber.objects.get(email="r0@example.org").pk,
        list_id=news.pk,
        source="link",
        issue_id=issue.pk,
    )
    return issue


def test_report_figures_come_from_the_ledger(sent_issue):
    with CaptureQueriesContext(connection) as queries:
        figures = issue_report(issue=sent_issue)

    assert figures == {
        "recipients": 12,
        "sent": 10,
        "delivered": 3,
        "bounced": 2,
        "complained": 1,
        "failed": 1,
        "skipped": 0,
        "cancelled": 0,
        "waiting": 1,
        "deferred": 0,
        "unsubscribed": 1,
        "tracking": False,
    }
    assert len(queries) <= 4


def test_opens_and_clicks_are_counted_only_when_a_list_tracks(sent_issue):
    assert "opened" not in issue_report(issue=sent_issue)
    sent_issue.lists.update(tracking_enabled=True)

    figures = issue_report(issue=sent_issue)

    assert (figures["opened"], figures["clicked"]) == (2, 1)

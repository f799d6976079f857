import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from issues.models import Delivery, DeliveryEvent, Issue
from subscriptions.models import Subscriber


@pytest.fixture
def issue(db):
    return Issue.objects.create(title="An article", body="Text.")


def test_a_second_delivery_for_the_same_issue_and_reader_is_refused(issue):
    reader = Subscriber.objects.create(email="r@example.org")
    Delivery.objects.create(issue=issue, subscriber=reader, email=reader.email)
    with pytest.raises(IntegrityError), transaction.atomic():
        Delivery.objects.create(issue=issue, subscriber=reader, email=reader.email)
    with pytest.raises(IntegrityError), transaction.atomic():
        Delivery.objects.bulk_create([Delivery(issue=issue, subscriber=reader, email=reader.email)])
    assert Delivery.objects.count() == 1


def test_a_claimed_delivery_names_its_claimant(issue):
    reader = Subscriber.objects.create(email="r@example.org")
    with pytest.raises(IntegrityError), transaction.atomic():
        Delivery.objects.create(issue=issue, subscriber=reader, email=reader.email, status="claimed")


def test_a_sent_delivery_has_a_time(issue):
    reader = Subscriber.objects.create(email="r@example.org")
    with pytest.raises(IntegrityError), transaction.atomic():
        Delivery.objects.create(issue=issue, subscriber=reader, email=reader.email, status="sent")
    Delivery.objects.create(issue=issue, subscriber=reader, email=reader.email, status="sent", sent_at=timezone.now())


def test_scheduled_issue_needs_a_time(db):
    with pytest.raises(IntegrityError), transaction.atomic():
        Issue.objects.create(title="Later", body="x", status="scheduled")


def test_a_provider_event_is_stored_once(db):
    DeliveryEvent.objects.create(provider="mailgun", event_id="ev-1", event_type="delivered")
    with pytest.raises(IntegrityError), transaction.atomic():
        DeliveryEvent.objects.create(provider="mailgun", event_id="ev-1", event_type="delivered")
    DeliveryEvent.objects.create(provider="postmark", event_id="ev-1", event_type="delivered")

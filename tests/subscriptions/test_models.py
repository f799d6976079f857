import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from subscriptions.models import MailingList, Subscriber, Subscription


@pytest.fixture
def mailing_list(db):
    return MailingList.objects.create(name="News", slug="news", from_name="News", from_email="news@example.org")


@pytest.mark.django_db
def test_same_address_in_other_letter_case_is_refused_by_the_database():
    Subscriber.objects.create(email="Reader@Example.org")
    with pytest.raises(IntegrityError), transaction.atomic():
        Subscriber.objects.create(email="reader@example.ORG")
    assert Subscriber.objects.count() == 1


@pytest.mark.django_db
def test_bulk_insert_of_a_case_variant_is_refused_too():
    Subscriber.objects.create(email="a@example.org")
    with pytest.raises(IntegrityError), transaction.atomic():
        Subscriber.objects.bulk_create([Subscriber(email="A@EXAMPLE.ORG")])


def test_one_subscription_per_reader_and_list(mailing_list):
    reader = Subscriber.objects.create(email="r@example.org")
    Subscription.objects.create(subscriber=reader, mailing_list=mailing_list, consent_source="form")
    with pytest.raises(IntegrityError), transaction.atomic():
        Subscription.objects.create(subscriber=reader, mailing_list=mailing_list, consent_source="form")


def test_active_subscription_must_be_confirmed(mailing_list):
    reader = Subscriber.objects.create(email="r@example.org")
    with pytest.raises(IntegrityError), transaction.atomic():
        Subscription.objects.create(
            subscriber=reader, mailing_list=mailing_list, consent_source="form", status="active"
        )


def test_unsubscribed_needs_when_and_how(mailing_list):
    reader = Subscriber.objects.create(email="r@example.org")
    with pytest.raises(IntegrityError), transaction.atomic():
        Subscription.objects.create(
            subscriber=reader,
            mailing_list=mailing_list,
            consent_source="form",
            status="unsubscribed",
            unsubscribed_at=timezone.now(),
        )
    Subscription.objects.create(
        subscriber=reader,
        mailing_list=mailing_list,
        consent_source="form",
        status="unsubscribed",
        unsubscribed_at=timezone.now(),
        unsubscribe_source="link",
    )


def test_unknown_status_is_refused(mailing_list):
    reader = Subscriber.objects.create(email="r@example.org")
    with pytest.raises(IntegrityError), transaction.atomic():
        Subscription.objects.create(subscriber=reader, mailing_list=mailing_list, consent_source="form", status="maybe")

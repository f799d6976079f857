import pytest
from django.utils import timezone

from issues.models import Delivery, Issue
from subscriptions import confirmation, erasure, services, suppressions, unsubscribing
from subscriptions.models import Subscriber, Subscription


def test_unsubscribe_committed_during_a_send_leaves_the_reader_not_active(news, active_reader):
    # The delivery engine re-checks the subscription when it claims a row;
    # this is the state it will find.
    issue = Issue.objects.create(title="Sending", body="text", status="sending", started_at=timezone.now())
    Delivery.objects.create(issue=issue, subscriber=active_reader, email=active_reader.email, mailing_list=news)
    assert unsubscribing.subscription_unsubscribe(
        subscriber_id=active_reader.pk, list_id=news.pk, source="one_click", issue_id=issue.pk
    )
    assert not Subscription.objects.filter(
        subscriber=active_reader, mailing_list=news, status=Subscription.Status.ACTIVE
    ).exists()


def test_subscribing_an_active_reader_again_changes_nothing(news, active_reader, django_capture_on_commit_callbacks):
    before = Subscription.objects.get()
    with django_capture_on_commit_callbacks() as callbacks:
        services.subscriber_subscribe(email="active@example.org", name="Mallory", lists=[news], client="192.0.2.1")
    after = Subscription.objects.get()
    assert (after.status, after.consented_at, after.confirmed_at) == (
        "active",
        before.consented_at,
        before.confirmed_at,
    )
    assert Subscriber.objects.get().name == "Ada"  # a stranger cannot rename a reader
    assert callbacks == []


def test_a_blank_name_is_filled_from_the_form(news, django_capture_on_commit_callbacks):
    Subscriber.objects.create(email="r@example.org")
    services.subscriber_subscribe(email="r@example.org", name="Rosa", lists=[news], client="x")
    assert Subscriber.objects.get().name == "Rosa"


def test_address_in_another_letter_case_is_the_same_reader(news):
    services.subscriber_subscribe(email="Reader@example.org", name="", lists=[news], client="x")
    services.subscriber_subscribe(email="reader@example.org", name="", lists=[news], client="x")
    assert Subscriber.objects.count() == 1
    assert Subscription.objects.count() == 1


def test_confirmation_mail_is_not_sent_to_a_since_suppressed_address(news, outbox):
    services.subscriber_subscribe(email="r@example.org", name="", lists=[news], client="x")
    suppressions.suppression_add(email="r@example.org", reason="complaint")
    assert confirmation.confirmation_mail_send(subscriber_id=Subscriber.objects.get().pk) is False
    assert list(outbox.iterdir()) == []


def test_erase_is_harmless_twice(active_reader):
    assert erasure.subscriber_erase(subscriber_id=active_reader.pk) is True
    assert erasure.subscriber_erase(subscriber_id=active_reader.pk) is False


@pytest.mark.django_db
def test_welcome_is_not_sent_to_someone_no_longer_active(notes, outbox):
    reader = Subscriber.objects.create(email="r@example.org")
    Subscription.objects.create(subscriber=reader, mailing_list=notes, consent_source="form")
    assert services.welcome_mail_send(subscriber_id=reader.pk, list_id=notes.pk) is False

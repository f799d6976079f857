"""Every event name the providers document, posted as they post it, is stored with its meaning and acted on."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid

import pytest
from django.utils import timezone

from issues.delivery.record import sent_messages_record
from issues.models import Delivery, DeliveryEvent, Issue
from subscriptions.models import MailingList, Subscriber, Subscription, Suppression
from tests.issues.payloads import WEBHOOK_SECRET, WebhookPost, anymail_settings, basic_auth
from tests.issues.payloads.documented import DOCUMENTED, documented_post

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def webhook_settings(settings):
    settings.ANYMAIL = anymail_settings()
    settings.SOFT_BOUNCE_LIMIT = 3
    settings.FEEDBACK_INLINE_SECONDS = 30.0
    settings.FEEDBACK_INLINE_EVENTS = 10_000  # every post stored in its request (the queued path: test_pending_events)


def make_list(slug: str, *, tracking: bool = False) -> MailingList:
    return MailingList.objects.create(
        name=slug.title(), slug=slug, from_name="DWV", from_email=f"{slug}@dwv.example", tracking_enabled=tracking
    )


def reader(email: str, *lists: MailingList) -> Subscriber:
    subscriber = Subscriber.objects.create(email=email)
    for mailing_list in lists:
        Subscription.objects.create(
            subscriber=subscriber,
            mailing_list=mailing_list,
            status=Subscription.Status.ACTIVE,
            consent_source=Subscription.ConsentSource.FORM,
            confirmed_at=timezone.now(),
        )
    return subscriber


def sent(issue: Issue, subscriber: Subscriber, mailing_list: MailingList) -> Delivery:
    row = Delivery.objects.create(
        issue=issue,
        subscriber=subscriber,
        mailing_list=mailing_list,
        email=subscriber.email,
        status=Delivery.Status.SENT,
        sent_at=timezone.now(),
        provider_message_id=f"<{uuid.uuid4().hex}@esp.example>",
    )
    sent_messages_record(issue.pk, row.sent_at, [row.pk], [row.provider_message_id])
    return row


def new_issue(mailing_list: MailingList, title: str = "The issue") -> Issue:
    issue = Issue.objects.create(title=title, body="Body", status=Issue.Status.SENDING)
    issue.lists.add(mailing_list)
    return issue


def http_post(live_server, request: WebhookPost) -> int:
    headers = {"Content-Type": request.content_type, "Authorization": basic_auth(WEBHOOK_SECRET), **request.headers}
    http_request = urllib.request.Request(live_server.url + request.path, data=request.body, headers=headers)
    try:
        with urllib.request.urlopen(http_request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("provider", sorted(DOCUMENTED))
def test_every_documented_event_name_is_stored_with_its_meaning_never_unknown(live_server, provider):
    news = make_list("news", tracking=True)
    issue = new_issue(news)
    names = {}
    for n, name in enumerate(DOCUMENTED[provider]):
        delivery = sent(issue, reader(f"reader{n}@example.org", news), news)
        names[delivery.pk] = name
        post = documented_post(provider, name, recipient=delivery.email, message_id=delivery.provider_message_id)
        assert http_post(live_server, post) == 200, name

    stored = {names[e.delivery_id]: e.event_type for e in DeliveryEvent.objects.filter(delivery__isnull=False)}
    assert stored == DOCUMENTED[provider]
    assert not DeliveryEvent.objects.filter(event_type="unknown").exists()


def post(client, provider: str, name: str, delivery: Delivery | None = None, **values):
    recipient = values.pop("recipient", delivery.email if delivery else "")
    message_id = values.pop("message_id", delivery.provider_message_id if delivery else "<none@esp.example>")
    request = documented_post(provider, name, recipient=recipient, message_id=message_id)
    if values:
        body = json.loads(request.body)
        body.update(values)
        request = WebhookPost(request.path, json.dumps(body).encode(), request.content_type, request.headers)
    response = request.send(client)
    assert response.status_code == 200
    return response


@pytest.fixture
def two_lists():
    news, other = make_list("news"), make_list("other")
    alice = reader("alice@example.org", news, other)
    issue = new_issue(news)
    return {"news": news, "other": other, "alice": alice, "issue": issue, "delivery": sent(issue, alice, news)}


def statuses(subscriber: Subscriber) -> dict[str, tuple[str, str]]:
    return {
        s.mailing_list.slug: (s.status, s.unsubscribe_source)
        for s in Subscription.objects.filter(subscriber=subscriber).select_related("mailing_list")
    }


def test_brevo_unsubscribed_unsubscribes_the_reader_from_the_list_it_was_sent_through(client, two_lists):
    post(client, "brevo", "unsubscribed", two_lists["delivery"])

    assert DeliveryEvent.objects.get().event_type == "unsubscribed"
    assert statuses(two_lists["alice"]) == {"news": ("unsubscribed", "esp"), "other": ("active", "")}
    news = Subscription.objects.get(subscriber=two_lists["alice"], mailing_list=two_lists["news"])
    assert news.unsubscribe_issue == two_lists["issue"]


@pytest.mark.parametrize("provider", ["brevo", "amazon_ses", "sendgrid", "postmark", "mailgun"])
def test_an_unsubscribe_linked_to_no_delivery_unsubscribes_the_address_from_every_list(client, two_lists, provider):
    name = {"amazon_ses": "Subscription/unsubscribeAll", "postmark": "SubscriptionChange/ManualSuppression"}
    post(client, provider, name.get(provider, "unsubscribed" if provider != "sendgrid" else "unsubscribe"),
         recipient="Alice@Example.org", message_id="<not-ours@esp.example>")  # fmt: skip

    event = DeliveryEvent.objects.get()
    assert (event.event_type, event.delivery) == ("unsubscribed", None)
    assert statuses(two_lists["alice"]) == {"news": ("unsubscribed", "esp"), "other": ("unsubscribed", "esp")}
    assert not Suppression.objects.exists()


def test_an_unlinked_ses_topic_opt_out_naming_one_of_our_lists_leaves_the_others(client, two_lists):
    request = documented_post(
        "amazon_ses", "Subscription/topicOptOut", recipient="alice@example.org", message_id="<not-ours@esp.example>"
    )
    envelope = json.loads(request.body)
    inner = json.loads(envelope["Message"])
    inner["subscription"]["newTopicPreferences"]["topicSubscriptionStatus"][0]["topicName"] = "other"
    envelope["Message"] = json.dumps(inner)
    WebhookPost(request.path, json.dumps(envelope).encode(), request.content_type, request.headers).send(client)

    assert statuses(two_lists["alice"]) == {"news": ("active", ""), "other": ("unsubscribed", "esp")}


def test_an_unlinked_unsubscribe_for_a_stranger_changes_nothing(client, two_lists):
    post(client, "brevo", "unsubscribed", recipient="stranger@example.net", message_id="<x@esp.example>")

    assert DeliveryEvent.objects.get().event_type == "unsubscribed"
    assert statuses(two_lists["alice"]) == {"news": ("active", ""), "other": ("active", "")}


def test_ses_delivery_delays_of_three_issues_in_a_row_suppress_the_address(client, two_lists):
    news, alice = two_lists["news"], two_lists["alice"]
    for n in range(3):
        delivery = sent(new_issue(news, f"Issue {n}"), alice, news)
        post(client, "amazon_ses", "DeliveryDelay", delivery)
        if n < 2:
            assert not Suppression.objects.exists()
        time.sleep(0.01)

    assert Suppression.objects.get().reason == Suppression.Reason.SOFT_BOUNCES
    assert set(DeliveryEvent.objects.values_list("event_type", flat=True)) == {"deferred"}


def test_a_postmark_bounce_of_unknown_kind_does_not_suppress(client, two_lists):
    post(client, "postmark", "Bounce/Unknown", two_lists["delivery"])

    assert DeliveryEvent.objects.get().event_type == "soft_bounced"
    assert not Suppression.objects.exists()


def test_a_ses_subscription_opt_in_unsubscribes_nobody(client, two_lists):
    post(client, "amazon_ses", "Subscription/optIn", two_lists["delivery"])

    assert DeliveryEvent.objects.get().event_type == "subscribed"
    assert statuses(two_lists["alice"]) == {"news": ("active", ""), "other": ("active", "")}

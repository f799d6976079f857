"""One intake for every returned mail: attributed, recorded once, acted on by the same rules as ESP events."""

from __future__ import annotations

import pytest

from issues.feedback.bounces.intake import bounce_receive
from issues.models import Delivery, DeliveryEvent, UnparsedBounce
from subscriptions.links import unsubscribe_mailto_for
from subscriptions.models import Subscription, Suppression
from tests.feedback.bounces.conftest import BOUNCE_ADDRESS, issue_sent, returned_mail
from tests.issues.ledger_helpers import list_make, readers_make


def _state() -> tuple:
    """Everything a returned mail may change."""
    return (
        sorted(Delivery.objects.values_list("id", "status", "last_error")),
        sorted(DeliveryEvent.objects.values_list("event_id", "event_type", "delivery_id")),
        sorted(Suppression.objects.values_list("email_hash", "reason")),
        sorted(Subscription.objects.values_list("id", "status", "unsubscribe_source")),
        UnparsedBounce.objects.count(),
    )


@pytest.mark.django_db
@pytest.mark.parametrize("sample", ["postfix_hard", "sendmail_hard", "m365_hard", "gmail_hard", "exim_plain"])
def test_a_permanent_failure_marks_the_copy_bounced_and_suppresses_the_address(smtp_sink, sample):
    issue = issue_sent(readers=3)
    dead, *others = Delivery.objects.filter(issue=issue).order_by("id")
    result = bounce_receive(raw=returned_mail(sample, dead, smtp_sink), source="pipe")
    assert (result.recorded, result.unattributed) == (1, 0)
    dead.refresh_from_db()
    assert (dead.status == "bounced" and "5.1.1" in dead.last_error) or "5.1.10" in dead.last_error
    assert Suppression.objects.get(email=dead.email).reason == "hard_bounce"
    event = DeliveryEvent.objects.get(delivery=dead)
    assert (event.provider, event.event_type) == ("smtp", "bounced")
    assert event.payload["source"] == "pipe" and event.payload["status"].startswith("5.1.")
    assert all(Delivery.objects.get(pk=o.pk).status == "sent" for o in others)


@pytest.mark.django_db
def test_the_same_corpus_read_twice_changes_nothing_the_second_time(smtp_sink):
    issue = issue_sent(readers=6)
    rows = list(Delivery.objects.filter(issue=issue).order_by("id"))
    corpus = [
        returned_mail("postfix_hard", rows[0], smtp_sink),
        returned_mail("postfix_delayed", rows[1], smtp_sink),
        returned_mail("arf_abuse", rows[2], smtp_sink),
        returned_mail("out_of_office", rows[3], smtp_sink),
        returned_mail("exim_plain", rows[4], smtp_sink),
        (returned_mail("garbage", rows[5])),
    ]
    for raw in corpus:
        bounce_receive(raw=raw, source="imap")
    first = _state()
    results = [bounce_receive(raw=raw, source="imap") for raw in corpus]
    assert _state() == first
    assert sum(r.recorded for r in results) == 0 and sum(r.replayed for r in results) == 4


@pytest.mark.django_db
def test_a_complaint_suppresses_and_unsubscribes_from_every_list(smtp_sink):
    news, other = list_make("news"), list_make("other")
    readers_make(news, 2)
    readers_make(other, 2)
    issue = issue_sent(mailing_list=news)
    delivery = Delivery.objects.filter(issue=issue).order_by("id").first()
    bounce_receive(raw=returned_mail("arf_abuse", delivery, smtp_sink), source="imap")
    delivery.refresh_from_db()
    assert delivery.status == "complained"
    assert Suppression.objects.get(email=delivery.email).reason == "complaint"
    subscriptions = Subscription.objects.filter(subscriber_id=delivery.subscriber_id)
    assert subscriptions.count() == 2
    assert set(subscriptions.values_list("status", "unsubscribe_source")) == {("unsubscribed", "complaint")}


@pytest.mark.django_db
def test_a_full_mailbox_counts_toward_the_soft_bounce_run_and_suppresses_only_at_its_limit(smtp_sink, settings):
    settings.SOFT_BOUNCE_LIMIT = 3
    news = list_make("news")
    readers_make(news, 2)
    for number in range(3):
        issue = issue_sent(mailing_list=news)
        full = Delivery.objects.filter(issue=issue).order_by("id").first()
        raw = returned_mail("postfix_delayed", full, smtp_sink).replace(
            b"7Hq9Kd1Bb2z8p@mx", f"7Hq9Kd1Bb2z8p{number}@mx".encode()
        )
        bounce_receive(raw=raw, source="imap")
        full.refresh_from_db()
        assert full.status == "sent"  # a delay is not a bounce
        assert Suppression.objects.filter(email=full.email).exists() == (number == 2)
    assert Suppression.objects.get(email=full.email).reason == "soft_bounces"


@pytest.mark.django_db
def test_an_auto_reply_changes_nothing(smtp_sink):
    issue = issue_sent(readers=2)
    delivery = Delivery.objects.filter(issue=issue).first()
    before = _state()
    assert bounce_receive(raw=returned_mail("out_of_office", delivery, smtp_sink), source="pipe").form == "auto_reply"
    assert _state() == before


@pytest.mark.django_db
def test_garbage_is_kept_once_for_an_admin(smtp_sink):
    raw = returned_mail("garbage", Delivery(email="x@example.org"))
    for _ in range(2):
        assert bounce_receive(raw=raw, source="http").form == "unparsed"
    kept = UnparsedBounce.objects.get()
    assert bytes(kept.raw) == raw and kept.source == "http" and kept.size == len(raw)


@pytest.mark.django_db
def test_without_a_verp_token_the_original_message_id_then_the_address_attribute_the_bounce(smtp_sink):
    issue = issue_sent(readers=3)
    first, second, _ = Delivery.objects.filter(issue=issue).order_by("id")
    by_message_id = returned_mail("sendmail_hard", first, None)  # sent to the bare bounce address
    assert b"bounces+" not in by_message_id
    bounce_receive(raw=by_message_id, source="pipe")
    assert DeliveryEvent.objects.get(recipient=first.email).delivery_id == first.pk
    by_address = returned_mail("postfix_hard", second, None, **{"{MSGID}": "unknown@elsewhere.example"})
    bounce_receive(raw=by_address, source="pipe")
    assert DeliveryEvent.objects.get(recipient=second.email).delivery_id == second.pk


@pytest.mark.django_db
def test_a_forged_verp_token_attributes_nothing_by_it(smtp_sink):
    issue = issue_sent(readers=2)
    _, second = Delivery.objects.filter(issue=issue).order_by("id")
    # A report about the second reader, sent to a made-up token: the address decides, not the token.
    forged = "bounces+1-aaaaaaaaaaaaa@lists.example.org"
    raw = returned_mail("postfix_hard", second, None, **{"{VERP}": forged, "{MSGID}": "x@y"})
    bounce_receive(raw=raw, source="pipe", envelope_recipient=forged)
    assert DeliveryEvent.objects.get().delivery_id == second.pk


@pytest.mark.django_db
def test_mail_to_the_tokenised_unsubscribe_address_unsubscribes_the_reader_in_the_token(smtp_sink):
    news = list_make("news")
    (reader,) = readers_make(news, 1)
    # The address each copy's List-Unsubscribe names, upper-cased as some relays do.
    address = unsubscribe_mailto_for(mailing_list=news, subscriber_id=reader).upper()
    raw = (
        f"From: Someone Else <someone@example.net>\r\nTo: {address}\r\nSubject: unsubscribe\r\n"
        "Message-ID: <u1@example.net>\r\n\r\nunsubscribe\r\n"
    ).encode()
    assert bounce_receive(raw=raw, source="pipe").form == "unsubscribe"
    subscription = Subscription.objects.get(subscriber_id=reader)
    assert (subscription.status, subscription.unsubscribe_source) == ("unsubscribed", "mailto")


@pytest.mark.django_db
def test_mail_to_the_plain_unsubscribe_address_or_a_forged_token_unsubscribes_nobody(smtp_sink):
    news = list_make("news")
    first, second = readers_make(news, 2)
    raw = (
        b"From: reader000000@example.org\r\nTo: news+unsubscribe@lists.example.org\r\nSubject: unsubscribe\r\n\r\nx\r\n"
    )
    assert bounce_receive(raw=raw, source="pipe").form == "unsubscribe"
    forged = raw.replace(b"news+unsubscribe@", b"news+unsubscribe-2.1.aaaaaaaaaaaaaaaaaaaa@")
    forged = forged.replace(b"reader000000", b"reader000001")
    assert bounce_receive(raw=forged, source="pipe").form == "unsubscribe"
    assert dict(Subscription.objects.values_list("subscriber_id", "status")) == {first: "active", second: "active"}


@pytest.mark.django_db
def test_a_bounce_for_an_address_we_never_mailed_is_recorded_unattributed_and_suppressed(smtp_sink):
    raw = returned_mail(
        "postfix_hard",
        Delivery(email="stranger@example.com"),
        None,
        **{"{VERP}": BOUNCE_ADDRESS, "{MSGID}": "nothing@here"},
    )
    result = bounce_receive(raw=raw, source="pipe")
    assert (result.recorded, result.unattributed) == (1, 1)
    assert DeliveryEvent.objects.get().delivery is None
    assert Suppression.objects.filter(email="stranger@example.com").exists()


@pytest.mark.django_db
def test_a_bounce_from_the_address_a_reader_forwards_to_suppresses_the_address_we_mailed(smtp_sink):
    issue = issue_sent(readers=2)
    reader = Delivery.objects.filter(issue=issue).order_by("id").first()
    raw = returned_mail("postfix_hard", reader, smtp_sink, **{"{RCPT}": "old-job@forwarded.example", "{MSGID}": "x@y"})
    assert bounce_receive(raw=raw, source="imap").unattributed == 0
    event = DeliveryEvent.objects.get()
    assert (event.delivery_id, event.recipient, event.payload["found_by"]) == (reader.pk, reader.email, "verp")
    assert event.payload["reported_recipient"] == "old-job@forwarded.example"
    assert Suppression.objects.get().email == reader.email

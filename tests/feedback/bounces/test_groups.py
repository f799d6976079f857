"""A mailbox poll's group of returned mails, taken in together: the same outcome as one by one, in a few statements."""

from __future__ import annotations

import pytest

from issues.feedback.bounces.intake import bounce_receive, bounces_receive
from issues.models import Delivery, DeliveryEvent, UnparsedBounce
from subscriptions.models import Subscription, Suppression
from tests.feedback.bounces.conftest import issue_sent, returned_mail
from tests.issues.ledger_helpers import list_make, readers_make

pytestmark = pytest.mark.django_db


def _corpus(sink, rows: list[Delivery]) -> list[bytes]:
    """Hard bounces, delays, a complaint, an auto-reply, garbage, a free-text bounce, one found by Message-ID."""
    return [
        returned_mail("postfix_hard", rows[0], sink),
        returned_mail("gmail_hard", rows[1], sink),
        returned_mail("postfix_delayed", rows[2], sink),
        returned_mail("arf_abuse", rows[3], sink),
        returned_mail("out_of_office", rows[4], sink),
        returned_mail("garbage", rows[5]),
        returned_mail("exim_plain", rows[6], sink),
        returned_mail("sendmail_hard", rows[7], None),  # to the bare bounce address: no VERP token
    ]


def _outcome(rows: list[Delivery]) -> list[tuple]:
    """What the mails did to each reader, by position (so two issues' outcomes compare)."""
    by_id = {row.pk: row for row in Delivery.objects.filter(pk__in=[r.pk for r in rows])}
    suppressed = dict(Suppression.objects.values_list("email", "reason"))
    outcome = []
    for row in rows:
        now = by_id[row.pk]
        events = sorted(DeliveryEvent.objects.filter(delivery=row).values_list("event_type", "payload__found_by"))
        subscriptions = sorted(
            Subscription.objects.filter(subscriber_id=row.subscriber_id).values_list("status", "unsubscribe_source")
        )
        error = now.last_error.split(" ", 1)[0]  # the status code (the words name the reader)
        outcome.append((now.status, error, suppressed.get(row.email), events, subscriptions))
    return outcome


def _state() -> tuple:
    return (
        sorted(Delivery.objects.values_list("id", "status", "last_error")),
        sorted(DeliveryEvent.objects.values_list("event_id", "event_type", "delivery_id", "applied_at")),
        sorted(Suppression.objects.values_list("email_hash", "reason", "event_id")),
        sorted(Subscription.objects.values_list("id", "status", "unsubscribe_source")),
        UnparsedBounce.objects.count(),
    )


def test_a_mixed_group_comes_to_what_the_same_mails_one_by_one_do_in_any_order(smtp_sink):
    one_by_one = issue_sent(readers=8, slug="first")
    rows = list(Delivery.objects.filter(issue=one_by_one).order_by("id"))
    for raw in _corpus(smtp_sink, rows):
        bounce_receive(raw=raw, source="imap")
    together = issue_sent(readers=8, slug="second", start=100)
    other = list(Delivery.objects.filter(issue=together).order_by("id"))
    results = bounces_receive(raws=list(reversed(_corpus(smtp_sink, other))), source="imap")

    assert _outcome(other) == _outcome(rows)
    assert [r.form for r in reversed(results)] == [
        "dsn",
        "dsn",
        "dsn",
        "arf",
        "auto_reply",
        "unparsed",
        "heuristic",
        "dsn",
    ]
    assert [r.recorded for r in reversed(results)] == [1, 1, 1, 1, 0, 0, 1, 1]
    assert sum(r.unattributed for r in results) == 0
    statuses = [status for status, *_ in _outcome(other)]
    assert statuses == ["bounced", "bounced", "sent", "complained", "sent", "sent", "bounced", "bounced"]
    assert DeliveryEvent.objects.get(delivery=other[7]).payload["found_by"] == "message_id"


def test_a_group_replayed_changes_nothing_and_says_so(smtp_sink):
    issue = issue_sent(readers=8)
    rows = list(Delivery.objects.filter(issue=issue).order_by("id"))
    corpus = _corpus(smtp_sink, rows)
    first = bounces_receive(raws=corpus, source="imap")
    assert sum(r.recorded for r in first) == 6 and UnparsedBounce.objects.count() == 1
    before = _state()
    again = bounces_receive(raws=corpus, source="pop3")
    assert _state() == before
    assert [r.form for r in again] == [r.form for r in first]
    assert sum(r.recorded for r in again) == 0 and sum(r.replayed for r in again) == 6


def test_a_group_of_a_hundred_bounces_takes_a_handful_of_statements(smtp_sink, django_assert_max_num_queries):
    issue = issue_sent(readers=100)
    rows = list(Delivery.objects.filter(issue=issue).order_by("id"))
    corpus = [
        returned_mail("postfix_delayed" if n % 5 == 4 else "postfix_hard", row, smtp_sink) for n, row in enumerate(rows)
    ]
    # Deliveries by token, the events, the suppressions, the ledger, the soft-bounce runs; a savepoint's two.
    with django_assert_max_num_queries(8):
        results = bounces_receive(raws=corpus, source="imap")
    assert sum(r.recorded for r in results) == 100
    assert Delivery.objects.filter(issue=issue, status="bounced").count() == 80
    assert Suppression.objects.filter(reason="hard_bounce").count() == 80


def test_delays_in_one_group_count_the_soft_bounce_run_once_per_reader(smtp_sink, settings):
    settings.SOFT_BOUNCE_LIMIT = 2
    news = list_make("news")
    readers_make(news, 2)
    issues, raws = [], []
    for number in range(2):
        issues.append(issue_sent(mailing_list=news))
        for row in Delivery.objects.filter(issue=issues[-1]).order_by("id"):  # the sink knows the latest VERP only
            raw = returned_mail("postfix_delayed", row, smtp_sink)
            raws.append(raw.replace(b"7Hq9Kd1Bb2z8p@mx", f"7Hq9Kd1Bb2z8p{number}@mx".encode()))
    bounces_receive(raws=raws[:1] + raws[2:3], source="imap")  # the first reader, both issues, together
    first = Delivery.objects.filter(issue=issues[0]).order_by("id").first()
    suppression = Suppression.objects.get()
    assert (suppression.email, suppression.reason) == (first.email, "soft_bounces")
    assert suppression.note == "2 issues in a row soft-bounced"
    bounces_receive(raws=raws[1:2], source="imap")  # the second reader: one issue, under the limit
    assert Suppression.objects.count() == 1

"""The delivery engine in this process, against a real SMTP server on loopback."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from dwvlist.redis import issue_ledger_key, redis_client
from issues import services
from issues.delivery import batch, claims, ledger
from issues.delivery.tasks import complete_ledger
from issues.models import Delivery, Issue
from subscriptions.models import Subscriber, Subscription, Suppression
from subscriptions.suppressions import suppression_add
from subscriptions.tokens import mailto_token_read, unsubscribe_token_read
from subscriptions.unsubscribing import subscription_unsubscribe
from tests.fakes.sinks import SmtpSink
from tests.issues.ledger_helpers import (
    issue_drain,
    issue_make,
    issue_start_here,
    ledger_writer_dies_on_second_chunk,
    list_make,
    readers_make,
)


@pytest.fixture
def smtp_sink(settings):
    sink = SmtpSink(keep_messages=True).start()
    settings.EMAIL_TRANSPORT = "smtp"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = sink.port
    settings.SEND_RETRY_BASE_SECONDS = 0
    settings.SITE_URL = "https://list.example.org"
    yield sink
    sink.stop()


def _issue_sending(readers: int) -> Issue:
    """Return an issue to `readers` readers of one list, started with its ledger written and no task queued."""
    news = list_make("news")
    readers_make(news, readers)
    issue = issue_make(news)
    issue_start_here(issue)
    return issue


@pytest.mark.django_db
def test_ledger_has_one_row_per_eligible_reader_deduplicated_across_lists():
    news, events = list_make("news"), list_make("events")
    both = readers_make(news, 30)
    readers_make(events, 30)  # the same 30 addresses: also on events
    only_events = readers_make(events, 10, start=100)
    readers_make(news, 5, start=200, status="pending")
    readers_make(news, 4, start=300, status="unsubscribed")
    suppression_add(email="READER000003@example.org", reason="complaint")
    issue = issue_make(news, events)

    assert ledger.issue_recipient_count(issue=issue) == 39
    assert ledger.ledger_write(issue=issue) == 39
    assert ledger.ledger_write(issue=issue) == 0  # idempotent
    rows = Delivery.objects.filter(issue=issue)
    assert rows.count() == 39
    assert set(rows.filter(subscriber_id__in=both).values_list("mailing_list_id", flat=True)) == {news.pk}
    assert set(rows.filter(subscriber_id__in=only_events).values_list("mailing_list_id", flat=True)) == {events.pk}


@pytest.mark.django_db
def test_two_claims_never_share_a_row():
    issue = _issue_sending(25)
    first = claims.deliveries_claim(issue_id=issue.pk, size=10, token="a" * 32)
    second = claims.deliveries_claim(issue_id=issue.pk, size=100, token="b" * 32)
    assert len(first) == 10 and len(second) == 15
    assert not {r[0] for r in first} & {r[0] for r in second}
    assert claims.deliveries_claim(issue_id=issue.pk, size=100, token="c" * 32) == []


@pytest.mark.django_db(transaction=True)
def test_every_reader_gets_one_copy_with_their_own_links_and_list_headers(smtp_sink, settings):
    settings.SEND_BATCH_SIZE = 7
    news, events = list_make("news"), list_make("events", archive_enabled=False)
    readers_make(news, 20)
    readers_make(events, 20)
    readers_make(events, 5, start=100)
    issue = issue_make(news, events)
    issue_start_here(issue)
    issue_drain(issue)

    issue.refresh_from_db()
    assert issue.status == "sent" and issue.sent_at
    tally = smtp_sink.tally
    assert tally.unique == 25 and tally.duplicates == 0
    assert tally.missing_unsubscribe == 0 and tally.shared_unsubscribe == 0
    message_ids = set()
    for message in smtp_sink.tally.parsed():
        to = message["To"]
        subscriber = Subscriber.objects.get(email=to)
        row = Delivery.objects.get(issue=issue, subscriber=subscriber)
        assert row.status == "sent" and row.sent_at and row.provider_message_id
        assert message["Message-ID"] == f"<{row.provider_message_id}>"
        message_ids.add(message["Message-ID"])
        assert message.get_content_type() == "multipart/alternative"
        assert message["Subject"] == issue.title
        assert message["Reply-To"] == "editors@example.org"
        assert message["Precedence"] == "bulk"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        unsubscribe, mailto = [part.strip(" <>") for part in message["List-Unsubscribe"].split(",")]
        assert unsubscribe.startswith("https://list.example.org/u/")
        # The reader's own unsubscribe address: its token names them, whatever a mail to it says it is from.
        assert mailto.startswith(f"mailto:{row.mailing_list.slug}+unsubscribe-")
        assert mailto.endswith("@lists.example.org?subject=unsubscribe")
        own = mailto_token_read(mailto.split("+unsubscribe-", 1)[1].split("@", 1)[0])
        assert (own.subscriber_id, own.list_id, own.issue_id) == (subscriber.pk, row.mailing_list_id, issue.pk)
        claim = unsubscribe_token_read(unsubscribe.rsplit("/u/", 1)[1].rstrip("/"))
        assert (claim.subscriber_id, claim.list_id, claim.issue_id) == (subscriber.pk, row.mailing_list_id, issue.pk)
        assert f"<{row.mailing_list.slug}.list.example.org>" in message["List-Id"]
        if row.mailing_list.archive_enabled:
            assert message["List-Archive"] == f"<https://list.example.org/archive/{row.mailing_list.slug}/>"
        else:
            assert message["List-Archive"] is None
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        assert unsubscribe in text and unsubscribe in html
        assert "/p/" in text and "%%" not in text and "%%" not in html
    assert len(message_ids) == 25


@pytest.mark.django_db(transaction=True)
def test_unsubscribe_committed_mid_send_means_no_further_mail(smtp_sink, settings):
    settings.SEND_BATCH_SIZE = 10
    news = list_make("news")
    ids = readers_make(news, 40)
    issue = issue_make(news)
    issue_start_here(issue)
    batch.batch_send(issue_id=issue.pk)
    sent_first = set(Delivery.objects.filter(issue=issue, status="sent").values_list("subscriber_id", flat=True))
    leaving = next(i for i in ids if i not in sent_first)
    assert subscription_unsubscribe(subscriber_id=leaving, list_id=news.pk, source="one_click", issue_id=issue.pk)
    issue_drain(issue)

    leaving_email = Subscriber.objects.get(pk=leaving).email
    assert smtp_sink.tally.recipients[leaving_email.lower()] == 0
    assert smtp_sink.tally.unique == 39
    row = Delivery.objects.get(issue=issue, subscriber_id=leaving)
    assert row.status == "skipped" and "unsubscribed" in row.last_error


@pytest.mark.django_db(transaction=True)
def test_suppressed_at_claim_time_is_skipped(smtp_sink):
    issue = _issue_sending(5)
    suppression_add(email="READER000002@example.org", reason="hard_bounce")
    # Known only by its keyed hash, as after an erasure:
    suppression_add(email="reader000004@example.org", reason="manual", keep_address=False)
    issue_drain(issue)
    assert smtp_sink.tally.unique == 3
    for address in ("reader000002@example.org", "reader000004@example.org"):
        assert Delivery.objects.get(issue=issue, email=address).status == "skipped"


@pytest.mark.django_db(transaction=True)
def test_no_such_mailbox_fails_permanently_and_suppresses(smtp_sink):
    news = list_make("news")
    readers_make(news, 5)
    smtp_sink.replies["reader000001@example.org"] = "550 5.1.1 No such user here"
    issue = issue_make(news)
    issue_start_here(issue)
    issue_drain(issue)
    row = Delivery.objects.get(issue=issue, email="reader000001@example.org")
    assert row.status == "failed" and "550" in row.last_error
    assert Suppression.objects.filter(email="reader000001@example.org", reason="rejected").exists()
    assert smtp_sink.tally.unique == 4
    issue.refresh_from_db()
    assert issue.status == "sent"


@pytest.mark.django_db(transaction=True)
def test_temporary_smtp_failures_are_retried_then_given_up(smtp_sink, settings):
    settings.SEND_MAX_ATTEMPTS = 3
    news = list_make("news")
    readers_make(news, 3)
    smtp_sink.replies["reader000000@example.org"] = "451 4.3.0 Try again later"
    issue = issue_make(news)
    issue_start_here(issue)
    issue_drain(issue)
    row = Delivery.objects.get(issue=issue, email="reader000000@example.org")
    assert row.status == "failed" and row.attempts == 3 and "gave up after 3 attempts" in row.last_error
    assert smtp_sink.tally.unique == 2


@pytest.mark.django_db(transaction=True)
def test_a_refused_connection_defers_the_whole_batch(settings):
    settings.EMAIL_TRANSPORT = "smtp"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 1
    settings.SEND_RETRY_BASE_SECONDS = 60
    issue = _issue_sending(4)
    result = batch.batch_send(issue_id=issue.pk)
    assert result.deferred == 4
    assert set(Delivery.objects.filter(issue=issue).values_list("status", flat=True)) == {"deferred"}
    assert batch.next_due_in(issue_id=issue.pk) > 50


@pytest.mark.django_db(transaction=True)
def test_reaper_returns_a_dead_workers_claim_and_marks_it_reclaimed(smtp_sink):
    issue = _issue_sending(6)
    claimed = claims.deliveries_claim(issue_id=issue.pk, size=4, token="dead" * 8)
    assert len(claimed) == 4
    assert claims.deliveries_reap() == 0  # not stale yet
    Delivery.objects.filter(claim_token="dead" * 8).update(claimed_at=timezone.now() - timedelta(hours=1))
    assert claims.deliveries_reap() == 4
    issue_drain(issue)
    assert smtp_sink.tally.unique == 6
    assert services.issue_progress(issue=issue)["reclaimed"] == 4


@pytest.mark.django_db(transaction=True)
def test_pause_and_cancel_act_between_batches(smtp_sink, settings):
    settings.SEND_BATCH_SIZE = 5
    issue = _issue_sending(20)
    batch.batch_send(issue_id=issue.pk)
    assert services.issue_pause(issue=issue)
    assert batch.batch_send(issue_id=issue.pk).done
    assert smtp_sink.tally.unique == 5
    assert services.issue_cancel(issue=issue)
    assert not services.issue_resume(issue=issue)
    assert Delivery.objects.filter(issue=issue, status="cancelled").count() == 15
    assert smtp_sink.tally.unique == 5


@pytest.mark.django_db(transaction=True)
def test_a_second_send_is_a_no_op(settings):
    news = list_make("news")
    readers_make(news, 3)
    issue = issue_make(news)
    settings.SEND_LANES = 1
    assert services.issue_send(issue=issue) is True
    assert services.issue_send(issue=issue) is False
    assert not Delivery.objects.filter(issue=issue).exists()  # the ledger is the queued task's work
    assert complete_ledger(issue.pk) == 3
    assert complete_ledger(issue.pk) == 0
    assert Delivery.objects.filter(issue=issue).count() == 3
    issue.refresh_from_db()
    assert issue.snapshot_html and issue.snapshot_text and issue.slug


@pytest.mark.django_db
def test_scheduling_in_the_past_is_refused():
    from django.core.exceptions import ValidationError

    news = list_make("news")
    issue = issue_make(news)
    with pytest.raises(ValidationError):
        services.issue_schedule(issue=issue, when=timezone.now() - timedelta(minutes=1))
    services.issue_schedule(issue=issue, when=timezone.now() + timedelta(hours=1))
    issue.refresh_from_db()
    assert issue.status == "scheduled"


@pytest.mark.django_db
def test_delivery_unique_even_when_ledger_rows_are_written_by_hand():
    news = list_make("news")
    [reader] = readers_make(news, 1)
    issue = issue_make(news)
    ledger.ledger_write(issue=issue)
    with pytest.raises(IntegrityError), transaction.atomic():
        Delivery.objects.create(issue=issue, subscriber_id=reader, email="x@example.org")
    assert Subscription.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_provider_429_pauses_every_worker_for_its_retry_after(settings):
    from issues.delivery import ratelimit
    from tests.fakes.sinks import EspSink

    esp = EspSink().start()
    esp.throttle_calls, esp.retry_after = 1, 2
    settings.EMAIL_TRANSPORT = "mailgun"
    settings.ANYMAIL = esp.anymail_settings("mailgun")
    settings.SEND_RETRY_BASE_SECONDS = 0
    try:
        issue = _issue_sending(30)
        first = batch.batch_send(issue_id=issue.pk)
        assert first.deferred == 30 and esp.tally.total == 0
        assert 0 < ratelimit.provider_pause_remaining() <= 2
        held = batch.batch_send(issue_id=issue.pk)  # any worker: nothing claimed during the pause
        assert held.claimed == 0 and held.wait > 0
        time.sleep(ratelimit.provider_pause_remaining() + 0.1)
        issue_drain(issue)
    finally:
        esp.stop()
    assert esp.faults["429"] == 1
    assert esp.tally.unique == 30 and esp.tally.duplicates == 0
    assert Delivery.objects.filter(issue=issue, status="sent").exclude(provider_message_id="").count() == 30


@pytest.mark.django_db
def test_the_rate_limit_is_one_bucket_shared_through_redis(settings):
    from issues.delivery import ratelimit

    settings.SEND_RATE_LIMIT = 50.0
    assert ratelimit.rate_reserve(count=50) == 0.0  # a full bucket
    wait = ratelimit.rate_reserve(count=50)  # as if from another worker: must wait about a second
    assert 0.8 <= wait <= 1.1
    assert ratelimit.rate_reserve(count=25) >= wait  # later reservations queue behind it
    assert ratelimit.batch_size_for_rate(500) == 250
    settings.SEND_RATE_LIMIT = 0.0
    assert ratelimit.rate_reserve(count=10_000) == 0.0


@pytest.mark.django_db(transaction=True)
def test_beat_starts_scheduled_issues_when_their_time_comes(settings):
    settings.SEND_LANES = 1
    news = list_make("news")
    readers_make(news, 3)
    issue = issue_make(news)
    services.issue_schedule(issue=issue, when=timezone.now() + timedelta(hours=1))
    assert services.issues_start_due() == []
    Issue.objects.filter(pk=issue.pk).update(scheduled_at=timezone.now() - timedelta(seconds=1))
    assert services.issues_start_due() == [issue.pk]
    issue.refresh_from_db()
    assert issue.status == "sending"
    complete_ledger(issue.pk)  # queued by issues_start_due; run here
    assert Delivery.objects.filter(issue=issue).count() == 3
    assert services.issues_start_due() == []


def _sending_with_chunks_of_ten(monkeypatch, *, readers: int) -> Issue:
    """An issue marked sending whose ledger has not been written, to be written 10 readers at a time."""
    monkeypatch.setattr(ledger, "LEDGER_CHUNK", 10)
    news = list_make("news")
    readers_make(news, readers)
    issue = issue_make(news)
    Issue.objects.filter(pk=issue.pk).update(status="sending")
    issue.refresh_from_db()
    return issue


@pytest.mark.django_db(transaction=True)
def test_the_ledger_is_written_in_chunks_and_sending_may_start_after_the_first(monkeypatch):
    issue = _sending_with_chunks_of_ten(monkeypatch, readers=35)
    seen = []

    def first_chunk_committed():
        row = Issue.objects.get(pk=issue.pk)
        seen.append((Delivery.objects.filter(issue=issue).count(), row.ledger_written_at, row.ledger_id_min))

    assert ledger.ledger_write(issue=issue, on_first_chunk=first_chunk_committed) == 35
    assert len(seen) == 1
    rows_then, written_then, low_then = seen[0]
    assert rows_then == 10 and written_then is None
    issue.refresh_from_db()
    ids = list(Delivery.objects.filter(issue=issue).values_list("id", flat=True))
    assert issue.ledger_written_at is not None
    assert issue.ledger_id_min == low_then == min(ids) and issue.ledger_id_max >= max(ids)
    assert ledger.ledger_write(issue=issue) == 0  # written twice: nothing added


@pytest.mark.django_db(transaction=True)
def test_an_issue_is_not_finished_until_its_whole_ledger_is_written(smtp_sink, monkeypatch):
    news = list_make("news")
    readers_make(news, 25)
    issue = issue_make(news)
    ledger_writer_dies_on_second_chunk(monkeypatch, chunk=10)
    services.issue_send(issue=issue)
    with pytest.raises(OSError):
        complete_ledger(issue.pk)
    for _ in range(5):
        result = batch.batch_send(issue_id=issue.pk)
    assert not result.done and result.wait > 0  # waiting for the rest of the ledger
    assert smtp_sink.tally.unique == 10
    assert Issue.objects.get(pk=issue.pk).status == "sending"
    # The writer's liveness lapses; the reaper's task finishes the ledger.
    redis_client().delete(issue_ledger_key(issue.pk))
    assert ledger.issues_needing_ledger() == [issue.pk]
    assert complete_ledger(issue.pk) == 15
    issue_drain(issue)
    assert Issue.objects.get(pk=issue.pk).status == "sent"
    assert smtp_sink.tally.unique == 25 and smtp_sink.tally.duplicates == 0


@pytest.mark.django_db(transaction=True)
def test_an_id_range_is_claimed_once_even_if_two_lanes_are_given_it(smtp_sink):
    issue = _issue_sending(30)
    low = issue.ledger_id_min
    first = claims.deliveries_claim_range(issue_id=issue.pk, start=low, stop=low + 20, token="a" * 32)
    again = claims.deliveries_claim_range(issue_id=issue.pk, start=low + 10, stop=low + 30, token="b" * 32)
    assert len(first) == 20 and len(again) == 10
    assert {row[0] for row in first}.isdisjoint(row[0] for row in again)
    assert Delivery.objects.filter(issue=issue, status="claimed").count() == 30


@pytest.mark.django_db(transaction=True)
def test_without_the_redis_cursor_batches_are_claimed_by_sweeping_the_ledger(settings):
    issue = _issue_sending(30)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    assert claims._range_next(issue, 7) is None
    batches = [claims._batch_claim(issue, 7, f"{n:032d}") for n in range(6)]
    assert [len(c) for c in batches] == [7, 7, 7, 7, 2, 0]
    ids = [row[0] for claim in batches for row in claim]
    assert len(set(ids)) == 30


@pytest.mark.django_db(transaction=True)
def test_cancelling_while_the_ledger_is_written_leaves_no_row_waiting(monkeypatch):
    issue = _sending_with_chunks_of_ten(monkeypatch, readers=35)
    # The editor cancels just after the first chunk is committed.
    ledger.ledger_write(issue=issue, on_first_chunk=lambda: services.issue_cancel(issue=Issue.objects.get(pk=issue.pk)))
    statuses = set(Delivery.objects.filter(issue=issue).values_list("status", flat=True))
    assert statuses == {"cancelled"}
    assert Delivery.objects.filter(issue=issue).count() == 10  # no further chunk was written

"""The delivery ledger at work: claim a batch, re-check it, send it, record it.

The Delivery table, not the broker, is the truth. A batch is claimed with
one conditional UPDATE (SKIP LOCKED on PostgreSQL), so no row is ever held
by two workers; a row is marked sent only by the worker whose claim token
it carries; rows claimed by a worker that died are returned to the queue
by the reaper after SEND_CLAIM_TIMEOUT and marked as possibly sent twice.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

import redis
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Min
from django.utils import timezone

from issues import ratelimit
from issues.mime import message_id_make
from issues.models import Delivery, Issue
from issues.transports import PERMANENT, SENT, BatchDeferred, Envelope, Recipient, transport_for_settings
from subscriptions.addresses import email_hash
from subscriptions.links import list_headers, preferences_url, unsubscribe_url
from subscriptions.models import MailingList, Subscriber, Subscription, Suppression

OPEN_STATUSES = (Delivery.Status.PENDING, Delivery.Status.CLAIMED, Delivery.Status.DEFERRED)


@dataclass
class BatchResult:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    skipped: int = 0
    wait: float = 0.0  # seconds until work may be available (rate limit, retries)
    done: bool = False  # the issue has nothing left to send


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=10, socket_connect_timeout=10)


def _alive_key(issue_id: int) -> str:
    return f"dwvlist:issue:{issue_id}:alive"


def issue_mark_alive(*, issue_id: int) -> None:
    """Record that a worker is working on the issue now."""
    try:
        _redis().set(_alive_key(issue_id), "1", ex=settings.SEND_ALIVE_TTL)
    except redis.RedisError:
        pass  # the reaper will re-queue if needed; the ledger is unaffected


def issue_is_alive(*, issue_id: int) -> bool:
    """Return True if a worker touched the issue within SEND_ALIVE_TTL."""
    return bool(_redis().exists(_alive_key(issue_id)))


# --- Claiming ---------------------------------------------------------------------------


def deliveries_claim(*, issue_id: int, size: int, token: str) -> list[tuple[int, int | None, int | None, str]]:
    """Claim up to `size` due rows of the issue; return (id, subscriber_id, list_id, email) for each."""
    now = timezone.now()
    lock = "FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
    table = Delivery._meta.db_table
    sql = f"""
        UPDATE {table}
           SET status = 'claimed', claim_token = %s, claimed_at = %s, attempts = attempts + 1, updated_at = %s
         WHERE id IN (
                SELECT id FROM {table}
                 WHERE issue_id = %s
                   AND (status = 'pending' OR (status = 'deferred' AND next_attempt_at <= %s))
                 LIMIT %s {lock})
        RETURNING id, subscriber_id, mailing_list_id, email
    """  # noqa: S608 (table name from the model, values as parameters)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [token, now, now, issue_id, now, size])
        return [tuple(row) for row in cursor.fetchall()]


def _eligible(issue: Issue, rows: list[tuple]) -> tuple[dict[int, tuple[int, str]], dict[int, str]]:
    """Re-check the claimed rows against subscriptions and suppressions as they are now.

    Return ({delivery_id: (list_id, current email)}, {delivery_id: reason skipped}).
    """
    list_ids = list(issue.lists.values_list("id", flat=True))
    subscriber_ids = [row[1] for row in rows if row[1]]
    active: dict[int, list[int]] = {}
    for subscriber_id, list_id in Subscription.objects.filter(
        subscriber_id__in=subscriber_ids,
        mailing_list_id__in=list_ids,
        status=Subscription.Status.ACTIVE,
    ).values_list("subscriber_id", "mailing_list_id"):
        active.setdefault(subscriber_id, []).append(list_id)
    emails = dict(Subscriber.objects.filter(id__in=subscriber_ids).values_list("id", "email"))
    hashes = {email_hash(email): subscriber_id for subscriber_id, email in emails.items()}
    suppressed = {
        hashes[h] for h in Suppression.objects.filter(email_hash__in=list(hashes)).values_list("email_hash", flat=True)
    }
    eligible, skipped = {}, {}
    for delivery_id, subscriber_id, list_id, _email in rows:
        if not subscriber_id or subscriber_id not in emails:
            skipped[delivery_id] = "the reader was erased before sending"
        elif subscriber_id in suppressed:
            skipped[delivery_id] = "the address is on the suppression list"
        elif subscriber_id not in active:
            skipped[delivery_id] = "the reader unsubscribed before sending"
        else:
            lists = active[subscriber_id]
            eligible[delivery_id] = (list_id if list_id in lists else min(lists), emails[subscriber_id])
    return eligible, skipped


# --- Building messages -------------------------------------------------------------------


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"


def envelope_for(issue: Issue, primary: MailingList) -> Envelope:
    """Return the parts of the issue mail that every reader shares, from the frozen snapshot."""
    return Envelope(
        issue_id=issue.pk,
        subject=issue.snapshot_subject,
        html=issue.snapshot_html,
        text=issue.snapshot_text,
        from_email=primary.from_email,
        from_name=primary.from_name,
        reply_to=primary.reply_to,
    )


def recipient_for(
    *, issue: Issue, delivery_id: int, subscriber_id: int, email: str, mailing_list: MailingList
) -> Recipient:
    """Return one reader's personal parts: links, headers, Message-ID, metadata."""
    unsubscribe = unsubscribe_url(subscriber_id=subscriber_id, list_id=mailing_list.pk, issue_id=issue.pk)
    return Recipient(
        delivery_id=delivery_id,
        subscriber_id=subscriber_id,
        email=email,
        message_id=message_id_make(
            issue_id=issue.pk, subscriber_id=subscriber_id, domain=_domain_of(mailing_list.from_email)
        ),
        unsubscribe_url=unsubscribe,
        preferences_url=preferences_url(subscriber_id=subscriber_id),
        headers=list_headers(mailing_list=mailing_list, unsubscribe=unsubscribe),
        metadata={"issue_id": str(issue.pk), "subscriber_id": str(subscriber_id), "delivery_id": str(delivery_id)},
    )


def issue_primary_list(issue: Issue) -> MailingList:
    """Return the list whose sender and footer the issue uses: the first of its lists."""
    primary = issue.lists.order_by("id").first()
    if primary is None:
        raise ValueError(f"issue {issue.pk} has no list")
    return primary


def preview_headers(*, issue: Issue) -> dict[str, str]:
    """Return the headers a reader's copy carries, with example links, for the editor's preview."""
    primary = issue_primary_list(issue)
    example = recipient_for(
        issue=issue, delivery_id=0, subscriber_id=0, email="reader@example.org", mailing_list=primary
    )
    from issues.mime import address_encode

    headers = {
        "From": address_encode(primary.from_name, primary.from_email),
        "To": example.email,
        "Subject": issue.snapshot_subject or issue.title,
        "Message-ID": f"<{example.message_id}>",
    }
    if primary.reply_to:
        headers["Reply-To"] = primary.reply_to
    headers.update(example.headers)
    return headers


# --- Recording -------------------------------------------------------------------------------


def _retry_delay(attempts: int) -> timedelta:
    base = settings.SEND_RETRY_BASE_SECONDS
    return timedelta(seconds=min(base * (2 ** max(0, attempts - 1)), 3600))


def _record(issue: Issue, token: str, outcomes: dict, emails: dict[int, str], lists: dict[int, int]) -> BatchResult:
    from subscriptions.services import suppression_add

    now = timezone.now()
    result = BatchResult()
    claimed = Delivery.objects.filter(claim_token=token, status=Delivery.Status.CLAIMED)
    sent = {d: o for d, o in outcomes.items() if o.status == SENT}
    permanent = {d: o for d, o in outcomes.items() if o.status == PERMANENT}
    transient = {d: o for d, o in outcomes.items() if o.status not in (SENT, PERMANENT)}
    with transaction.atomic():
        if sent:
            result.sent = _record_sent(token, now, sent, emails, lists)
        for delivery_id, outcome in permanent.items():
            result.failed += claimed.filter(id=delivery_id).update(
                status=Delivery.Status.FAILED, last_error=outcome.error, claim_token="", claimed_at=None, updated_at=now
            )
        if transient:
            max_attempts = settings.SEND_MAX_ATTEMPTS
            attempts_of = dict(claimed.filter(id__in=list(transient)).values_list("id", "attempts"))
            for delivery_id, outcome in transient.items():
                row = claimed.filter(id=delivery_id)
                attempts = attempts_of.get(delivery_id, max_attempts)
                if attempts >= max_attempts:
                    result.failed += row.update(
                        status=Delivery.Status.FAILED,
                        last_error=f"gave up after {attempts} attempts: {outcome.error}"[:1000],
                        claim_token="",
                        claimed_at=None,
                        updated_at=now,
                    )
                else:
                    result.deferred += row.update(
                        status=Delivery.Status.DEFERRED,
                        last_error=outcome.error,
                        next_attempt_at=now + _retry_delay(attempts),
                        claim_token="",
                        claimed_at=None,
                        updated_at=now,
                    )
    for delivery_id, outcome in permanent.items():
        if outcome.suppress and delivery_id in emails:
            suppression_add(email=emails[delivery_id], reason="rejected", note=outcome.error)
    return result


def _record_sent(token: str, now, sent: dict, emails: dict[int, str], lists: dict[int, int]) -> int:
    """Mark the batch's accepted rows sent, each with its message id, in one statement.

    Only rows still claimed under this batch's token change: a row the
    reaper took back in the meantime is left to its new owner.
    """
    table = Delivery._meta.db_table
    rows = ", ".join(["(CAST(%s AS BIGINT), %s, %s, CAST(%s AS BIGINT))"] * len(sent))
    params: list = []
    for delivery_id, outcome in sent.items():
        params += [delivery_id, outcome.message_id[:255], emails[delivery_id], lists[delivery_id]]
    # VALUES columns are column1..4 on both PostgreSQL and SQLite; a
    # statement that starts with UPDATE (not WITH) reports its row count on both.
    sql = f"""
        UPDATE {table}
           SET status = 'sent', sent_at = %s, provider_message_id = v.mid, email = v.email,
               mailing_list_id = v.list_id, claim_token = '', claimed_at = NULL, next_attempt_at = NULL,
               last_error = '', updated_at = %s
          FROM (SELECT column1 AS id, column2 AS mid, column3 AS email, column4 AS list_id
                  FROM (VALUES {rows}) AS vv) AS v
         WHERE {table}.id = v.id AND {table}.claim_token = %s AND {table}.status = 'claimed'
    """  # noqa: S608 (table name from the model, values as parameters)
    with connection.cursor() as cursor:
        cursor.execute(sql, [now, now, *params, token])
        return cursor.rowcount


def _defer_all(token: str, reason: str) -> int:
    """Return every row of the claim to the queue for a later retry (the batch failed as a whole)."""
    now = timezone.now()
    claimed = Delivery.objects.filter(claim_token=token, status=Delivery.Status.CLAIMED)
    max_attempts = settings.SEND_MAX_ATTEMPTS
    with transaction.atomic():
        failed = claimed.filter(attempts__gte=max_attempts).update(
            status=Delivery.Status.FAILED,
            last_error=f"gave up after {max_attempts} attempts: {reason}"[:1000],
            claim_token="",
            claimed_at=None,
            updated_at=now,
        )
        deferred = 0
        for attempts in set(claimed.values_list("attempts", flat=True)):
            deferred += claimed.filter(attempts=attempts).update(
                status=Delivery.Status.DEFERRED,
                last_error=reason[:1000],
                next_attempt_at=now + _retry_delay(attempts),
                claim_token="",
                claimed_at=None,
                updated_at=now,
            )
    return failed + deferred


# --- One batch --------------------------------------------------------------------------------


def issue_finish_if_done(*, issue_id: int) -> bool:
    """Mark a sending issue sent once no row is pending, claimed or deferred."""
    if Delivery.objects.filter(issue_id=issue_id, status__in=OPEN_STATUSES).exists():
        return False
    return (
        Issue.objects.filter(pk=issue_id, status=Issue.Status.SENDING).update(
            status=Issue.Status.SENT, sent_at=timezone.now()
        )
        == 1
    )


def next_due_in(*, issue_id: int) -> float | None:
    """Return seconds until the next deferred row is due, or None if none is waiting."""
    due = Delivery.objects.filter(issue_id=issue_id, status=Delivery.Status.DEFERRED).aggregate(
        first=Min("next_attempt_at")
    )["first"]
    if due is None:
        return None
    return max(0.0, (due - timezone.now()).total_seconds())


def batch_send(*, issue_id: int) -> BatchResult:
    """Claim, re-check, send and record one batch of the issue."""
    issue = Issue.objects.filter(pk=issue_id).first()
    if issue is None or issue.status != Issue.Status.SENDING:
        return BatchResult(done=True)  # paused, cancelled, finished: act between batches
    issue_mark_alive(issue_id=issue_id)
    pause = ratelimit.provider_pause_remaining()
    if pause > 0:
        return BatchResult(wait=pause)
    transport = transport_for_settings()
    size = ratelimit.batch_size_for_rate(min(settings.SEND_BATCH_SIZE, transport.max_batch))
    token = uuid.uuid4().hex
    rows = deliveries_claim(issue_id=issue_id, size=size, token=token)
    if not rows:
        if issue_finish_if_done(issue_id=issue_id):
            return BatchResult(done=True)
        wait = next_due_in(issue_id=issue_id)
        return BatchResult(wait=wait if wait is not None else 0.0, done=wait is None)
    result = BatchResult(claimed=len(rows))
    eligible, skipped = _eligible(issue, rows)
    if skipped:
        now = timezone.now()
        by_reason: dict[str, list[int]] = {}
        for delivery_id, reason in skipped.items():
            by_reason.setdefault(reason, []).append(delivery_id)
        for reason, ids in by_reason.items():
            Delivery.objects.filter(id__in=ids, claim_token=token, status=Delivery.Status.CLAIMED).update(
                status=Delivery.Status.SKIPPED, last_error=reason, claim_token="", claimed_at=None, updated_at=now
            )
        result.skipped = len(skipped)
    if eligible:
        wait = ratelimit.rate_reserve(count=len(eligible))
        if wait > 0:
            time.sleep(wait)
        lists = {m.pk: m for m in MailingList.objects.filter(pk__in={v[0] for v in eligible.values()})}
        subscribers = {row[0]: row[1] for row in rows}
        recipients = [
            recipient_for(
                issue=issue,
                delivery_id=delivery_id,
                subscriber_id=subscribers[delivery_id],
                email=email,
                mailing_list=lists[list_id],
            )
            for delivery_id, (list_id, email) in eligible.items()
        ]
        envelope = envelope_for(issue, issue_primary_list(issue))
        try:
            outcomes = transport.send(envelope=envelope, recipients=recipients)
        except BatchDeferred as exc:
            if exc.retry_after:
                ratelimit.provider_pause(seconds=exc.retry_after)
            result.deferred += _defer_all(token, exc.reason)
            issue_mark_alive(issue_id=issue_id)
            return result
        recorded = _record(
            issue,
            token,
            outcomes,
            emails={d: v[1] for d, v in eligible.items()},
            lists={d: v[0] for d, v in eligible.items()},
        )
        result.sent, result.failed, result.deferred = recorded.sent, recorded.failed, recorded.deferred
    issue_mark_alive(issue_id=issue_id)
    return result


# --- Recovery -----------------------------------------------------------------------------------


def deliveries_reap(*, older_than: timedelta | None = None) -> int:
    """Return rows claimed by a worker that stopped to the queue; return how many.

    Such a row may have reached its reader just before the worker died, so
    it is marked reclaimed: the issue's report counts these as possible
    duplicates.
    """
    cutoff = timezone.now() - (older_than or timedelta(seconds=settings.SEND_CLAIM_TIMEOUT))
    now = timezone.now()
    return Delivery.objects.filter(status=Delivery.Status.CLAIMED, claimed_at__lt=cutoff).update(
        status=Delivery.Status.PENDING, claim_token="", claimed_at=None, reclaimed_at=now, updated_at=now
    )


def issues_needing_lanes() -> list[int]:
    """Return sending issues that no worker has touched within SEND_ALIVE_TTL.

    Re-queueing lanes for one is always safe: a lane that finds nothing to
    claim finishes the issue or waits for its retries.
    """
    sending = Issue.objects.filter(status=Issue.Status.SENDING).values_list("id", flat=True)
    return [issue_id for issue_id in sending if not issue_is_alive(issue_id=issue_id)]


def test_copies_send(*, issue: Issue, addresses: list[str]) -> int:
    """Send the issue as it stands now to each address, marked as a test; return how many were accepted.

    Goes through the same transport and headers as a real send; the links
    name no reader (subscriber 0), so they lead to a harmless "not found".
    """
    from issues.rendering import issue_render

    rendered = issue_render(issue)
    primary = issue_primary_list(issue)
    envelope = envelope_for(issue, primary)
    envelope.subject = f"[TEST] {rendered.subject}"
    envelope.html, envelope.text = rendered.html, rendered.text
    recipients = [
        recipient_for(issue=issue, delivery_id=-(n + 1), subscriber_id=0, email=address, mailing_list=primary)
        for n, address in enumerate(addresses)
    ]
    try:
        outcomes = transport_for_settings().send(envelope=envelope, recipients=recipients)
    except BatchDeferred:
        return 0
    return sum(1 for o in outcomes.values() if o.status == SENT)

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

from django.conf import settings
from django.db import connection
from django.db.models import Min
from django.utils import timezone

from issues.delivery import ratelimit

# --- Claiming ---------------------------------------------------------------------------
#
# Batches are claimed by id range: a counter in Redis hands each lane the
# next range of the issue's ledger ids (up to what is written so far), and
# one UPDATE claims that range's pending rows, through the primary key. The
# counter is only a speed-up: two lanes given the same range cannot both
# claim a row (the UPDATE is conditional), and once the ranges run out, or
# if Redis lost the counter, a sweep claims whatever is still due
# (deferred retries, rows taken back from a dead worker) with SKIP LOCKED.
from issues.delivery.claims import OPEN_STATUSES, _batch_claim, _is_one_of, issue_mark_alive
from issues.delivery.messages import envelope_for, issue_primary_list, list_headers_template, recipient_for
from issues.delivery.record import BatchResult, _defer_all, _record, _skipped_record
from issues.delivery.transports import transport_for_settings
from issues.delivery.transports.base import SENT, BatchDeferred
from issues.models import Delivery, Issue
from subscriptions.addresses import email_hash
from subscriptions.models import MailingList, Subscriber, Subscription, Suppression


def _suppressed(issue: Issue, emails: dict[int, str]) -> set[int]:
    """Return the subscriber ids among `emails` whose address is on the suppression list now.

    The ledger left out every address suppressed when it was written, so
    only suppressions added since sending started need looking at: by
    address, and by keyed hash for the few whose address was erased. (An
    erased address cannot come back: every way in checks the hash.)
    """
    recent = Suppression.objects.all()
    if issue.started_at is not None:
        recent = recent.filter(created_at__gte=issue.started_at)
    rows = list(recent.values_list("email", "email_hash"))
    if not rows:
        return set()
    addresses = {email.strip().lower() for email, _ in rows if email}
    hashes = {key for email, key in rows if not email}
    return {
        subscriber_id
        for subscriber_id, email in emails.items()
        if email.strip().lower() in addresses or (hashes and email_hash(email) in hashes)
    }


def _eligible(issue: Issue, rows: list[tuple]) -> tuple[dict[int, tuple[int, str]], dict[int, str]]:
    """Re-check the claimed rows against subscriptions and suppressions as they are now.

    Return ({delivery_id: (list_id, current email)}, {delivery_id: reason skipped}).
    """
    list_ids = list(issue.lists.values_list("id", flat=True))
    subscriber_ids = [row[1] for row in rows if row[1]]
    emails: dict[int, str] = {}
    active: dict[int, list[int]] = {}
    if subscriber_ids:
        # One query: every claimed reader who still exists, with the issue's
        # lists they are still active on (none: they unsubscribed).
        subscriber = Subscriber._meta.db_table
        subscription = Subscription._meta.db_table
        in_lists, list_params = _is_one_of("x.mailing_list_id", list_ids)
        in_ids, id_params = _is_one_of("s.id", subscriber_ids)
        sql = f"""
            SELECT s.id, s.email, x.mailing_list_id
              FROM {subscriber} s
              LEFT JOIN {subscription} x
                ON x.subscriber_id = s.id AND x.status = 'active' AND {in_lists}
             WHERE {in_ids}
        """  # noqa: S608 (table names from the models, values as parameters)
        with connection.cursor() as cursor:
            cursor.execute(sql, [*list_params, *id_params])
            for subscriber_id, email, list_id in cursor.fetchall():
                emails[subscriber_id] = email
                if list_id is not None:
                    active.setdefault(subscriber_id, []).append(list_id)
    suppressed = _suppressed(issue, emails)
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


# --- Recording -------------------------------------------------------------------------------


# --- One batch --------------------------------------------------------------------------------


def issue_finish_if_done(*, issue_id: int) -> bool:
    """Mark a sending issue sent once its ledger is written and no row is pending, claimed or deferred."""
    if Delivery.objects.filter(issue_id=issue_id, status__in=OPEN_STATUSES).exists():
        return False
    return (
        Issue.objects.filter(pk=issue_id, status=Issue.Status.SENDING, ledger_written_at__isnull=False).update(
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


def _nothing_claimed(issue: Issue) -> BatchResult:
    """Say what a lane that found nothing to claim should do: finish, wait, or stop."""
    if issue.ledger_written_at is None:
        return BatchResult(wait=0.25)  # the ledger is still being written
    if issue_finish_if_done(issue_id=issue.pk):
        return BatchResult(done=True)
    wait = next_due_in(issue_id=issue.pk)
    # Nothing deferred: the rows left are in other lanes' hands.
    return BatchResult(wait=wait if wait is not None else 0.0, done=wait is None)


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
    rows = _batch_claim(issue, size, token)
    if not rows:
        return _nothing_claimed(issue)
    result = BatchResult(claimed=len(rows))
    eligible, skipped = _eligible(issue, rows)
    if skipped:
        _skipped_record(token, skipped)
        result.skipped = len(skipped)
    if eligible:
        wait = ratelimit.rate_reserve(count=len(eligible))
        if wait > 0:
            time.sleep(wait)
        lists = {m.pk: m for m in MailingList.objects.filter(pk__in={v[0] for v in eligible.values()})}
        templates = {pk: list_headers_template(mailing_list) for pk, mailing_list in lists.items()}
        claimed = {row[0]: row for row in rows}
        recipients = [
            recipient_for(
                issue=issue,
                delivery_id=delivery_id,
                subscriber_id=claimed[delivery_id][1],
                email=email,
                mailing_list=lists[list_id],
                headers_template=templates[list_id],
                nonce=token[:12],
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
        changed = {
            delivery_id: (list_id, email)
            for delivery_id, (list_id, email) in eligible.items()
            if (claimed[delivery_id][2], claimed[delivery_id][3]) != (list_id, email)
        }
        recorded = _record(issue, token, outcomes, emails={d: v[1] for d, v in eligible.items()}, changed=changed)
        result.sent, result.failed, result.deferred = recorded.sent, recorded.failed, recorded.deferred
    issue_mark_alive(issue_id=issue_id)
    return result


# --- Recovery -----------------------------------------------------------------------------------


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

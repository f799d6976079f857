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
from django.db.models import Min, Q
from django.utils import timezone

from issues import ratelimit
from issues.mime import message_id_make
from issues.models import Delivery, Issue, SentMessage
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
    return ratelimit.redis_client()


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


def _ledger_key(issue_id: int) -> str:
    return f"dwvlist:issue:{issue_id}:ledger"


def ledger_mark_alive(*, issue_id: int) -> None:
    """Record that the issue's ledger is being written now (lanes waiting for it do not count)."""
    try:
        _redis().set(_ledger_key(issue_id), "1", ex=settings.SEND_ALIVE_TTL)
    except redis.RedisError:
        pass  # at worst the reaper starts a second, harmless, writer


def ledger_is_alive(*, issue_id: int) -> bool:
    """Return True if the issue's ledger was being written within SEND_ALIVE_TTL."""
    return bool(_redis().exists(_ledger_key(issue_id)))


# --- Claiming ---------------------------------------------------------------------------
#
# Batches are claimed by id range: a counter in Redis hands each lane the
# next range of the issue's ledger ids (up to what is written so far), and
# one UPDATE claims that range's pending rows, through the primary key. The
# counter is only a speed-up: two lanes given the same range cannot both
# claim a row (the UPDATE is conditional), and once the ranges run out, or
# if Redis lost the counter, a sweep claims whatever is still due
# (deferred retries, rows taken back from a dead worker) with SKIP LOCKED.

_RANGE_SCRIPT = """
local low = tonumber(ARGV[1])
local high = tonumber(ARGV[2])
local start = tonumber(redis.call('GET', KEYS[1]) or low)
if start < low then start = low end
if start > high then return {start, start} end
local stop = math.min(start + tonumber(ARGV[3]), high + 1)
redis.call('SET', KEYS[1], stop, 'EX', tonumber(ARGV[4]))
return {start, stop}
"""


def _range_next(issue: Issue, size: int) -> tuple[int, int] | None:
    """Return the next [start, stop) range of the issue's ledger ids to claim, or None when there is none now."""
    if issue.ledger_id_min is None or issue.ledger_id_max is None:
        return None
    try:
        start, stop = _redis().eval(
            _RANGE_SCRIPT, 1, f"dwvlist:issue:{issue.pk}:cursor", issue.ledger_id_min, issue.ledger_id_max, size, 86400
        )
    except redis.RedisError:
        return None
    return (int(start), int(stop)) if stop > start else None


_CLAIM_SET = "status = 'claimed', claim_token = %s, claimed_at = %s, attempts = attempts + 1, updated_at = %s"
_CLAIM_RETURNING = "RETURNING id, subscriber_id, mailing_list_id, email"


def deliveries_claim_range(*, issue_id: int, start: int, stop: int, token: str) -> list[tuple]:
    """Claim the issue's pending rows with ids in [start, stop); return (id, subscriber_id, list_id, email) each."""
    now = timezone.now()
    table = Delivery._meta.db_table
    # "issue_id + 0" keeps the planner on the primary key: right after a
    # million-row ledger its statistics would send it through the issue index.
    sql = f"""
        UPDATE {table} SET {_CLAIM_SET}
         WHERE id >= %s AND id < %s AND issue_id + 0 = %s AND status = 'pending'
        {_CLAIM_RETURNING}
    """  # noqa: S608 (table name from the model, values as parameters)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [token, now, now, start, stop, issue_id])
        return [tuple(row) for row in cursor.fetchall()]


def deliveries_claim(*, issue_id: int, size: int, token: str) -> list[tuple[int, int | None, int | None, str]]:
    """Claim up to `size` due rows of the issue wherever they are; return (id, subscriber_id, list_id, email) each."""
    now = timezone.now()
    lock = "FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
    table = Delivery._meta.db_table
    sql = f"""
        UPDATE {table} SET {_CLAIM_SET}
         WHERE id IN (
                SELECT id FROM {table}
                 WHERE issue_id = %s
                   AND (status = 'pending' OR (status = 'deferred' AND next_attempt_at <= %s))
                 LIMIT %s {lock})
        {_CLAIM_RETURNING}
    """  # noqa: S608 (table name from the model, values as parameters)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [token, now, now, issue_id, now, size])
        return [tuple(row) for row in cursor.fetchall()]


def _batch_claim(issue: Issue, size: int, token: str) -> list[tuple]:
    """Claim the next batch: the next id range with rows in it, else a sweep once the ledger is written."""
    for _ in range(200):
        id_range = _range_next(issue, size)
        if id_range is None:
            break
        rows = deliveries_claim_range(issue_id=issue.pk, start=id_range[0], stop=id_range[1], token=token)
        if rows:
            return rows
    if issue.ledger_written_at is None:
        return []  # the rest of the ledger is being written; come back shortly
    return deliveries_claim(issue_id=issue.pk, size=size, token=token)


def _is_one_of(column: str, values: list[int]) -> tuple[str, list]:
    """Return SQL and parameters for "column is one of these ids": one array parameter on PostgreSQL."""
    if connection.vendor == "postgresql":
        # One array literal: psycopg would adapt a list element by element in Python.
        return f"{column} = ANY(CAST(%s AS bigint[]))", ["{" + ",".join(map(str, values)) + "}"]
    return f"{column} IN ({', '.join(['%s'] * len(values))})", list(values)


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


_URL_MARK = "\x00unsubscribe\x00"


def list_headers_template(mailing_list: MailingList) -> dict[str, str]:
    """Return the list's headers with a mark where each reader's unsubscribe URL goes."""
    return list_headers(mailing_list=mailing_list, unsubscribe=_URL_MARK)


def recipient_for(
    *,
    issue: Issue,
    delivery_id: int,
    subscriber_id: int,
    email: str,
    mailing_list: MailingList,
    headers_template: dict[str, str] | None = None,
    nonce: str = "",
) -> Recipient:
    """Return one reader's personal parts: links, headers, Message-ID, metadata.

    `headers_template` (from list_headers_template) saves rebuilding the
    list's headers for each reader of a batch; `nonce` (the batch's claim
    token) saves drawing random bytes for each Message-ID.
    """
    unsubscribe = unsubscribe_url(subscriber_id=subscriber_id, list_id=mailing_list.pk, issue_id=issue.pk)
    template = headers_template if headers_template is not None else list_headers_template(mailing_list)
    return Recipient(
        delivery_id=delivery_id,
        subscriber_id=subscriber_id,
        email=email,
        message_id=message_id_make(
            issue_id=issue.pk, subscriber_id=subscriber_id, domain=_domain_of(mailing_list.from_email), nonce=nonce
        ),
        unsubscribe_url=unsubscribe,
        preferences_url=preferences_url(subscriber_id=subscriber_id),
        headers={name: value.replace(_URL_MARK, unsubscribe) for name, value in template.items()},
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


def _record(issue: Issue, token: str, outcomes: dict, emails: dict[int, str], changed: dict) -> BatchResult:
    from subscriptions.services import suppression_add

    now = timezone.now()
    result = BatchResult()
    claimed = Delivery.objects.filter(claim_token=token, status=Delivery.Status.CLAIMED)
    sent = {d: o for d, o in outcomes.items() if o.status == SENT}
    permanent = {d: o for d, o in outcomes.items() if o.status == PERMANENT}
    transient = {d: o for d, o in outcomes.items() if o.status not in (SENT, PERMANENT)}
    with transaction.atomic():
        if sent:
            result.sent = _record_sent(issue.pk, token, now, sent, changed)
        # Rows that end alike are updated together: a refused or deferred
        # call leaves hundreds of readers with the same error.
        for error, ids in _grouped({d: o.error for d, o in permanent.items()}).items():
            result.failed += claimed.filter(id__in=ids).update(
                status=Delivery.Status.FAILED, last_error=error, claim_token="", claimed_at=None, updated_at=now
            )
        if transient:
            max_attempts = settings.SEND_MAX_ATTEMPTS
            attempts_of = dict(claimed.filter(id__in=list(transient)).values_list("id", "attempts"))
            endings = {d: (o.error, attempts_of.get(d, max_attempts)) for d, o in transient.items()}
            for (error, attempts), ids in _grouped(endings).items():
                rows = claimed.filter(id__in=ids)
                if attempts >= max_attempts:
                    result.failed += rows.update(
                        status=Delivery.Status.FAILED,
                        last_error=f"gave up after {attempts} attempts: {error}"[:1000],
                        claim_token="",
                        claimed_at=None,
                        updated_at=now,
                    )
                else:
                    result.deferred += rows.update(
                        status=Delivery.Status.DEFERRED,
                        last_error=error,
                        next_attempt_at=now + _retry_delay(attempts),
                        claim_token="",
                        claimed_at=None,
                        updated_at=now,
                    )
    for delivery_id, outcome in permanent.items():
        if outcome.suppress and delivery_id in emails:
            suppression_add(email=emails[delivery_id], reason="rejected", note=outcome.error)
    return result


def _record_sent(issue_id: int, token: str, now, sent: dict, changed: dict[int, tuple[int, str]]) -> int:
    """Mark the batch's accepted rows sent, each with its message id, in one statement.

    Only rows still claimed under this batch's token change: a row the
    reaper took back in the meantime is left to its new owner. The message
    ids are recorded in SentMessage too, where provider events find them.
    """
    table = Delivery._meta.db_table
    ids = list(sent)
    message_ids = [outcome.message_id[:255] for outcome in sent.values()]

    def sent_set(message_id: str) -> str:
        return (
            f"UPDATE {table} SET status = 'sent', sent_at = %s, provider_message_id = {message_id}, "  # noqa: S608
            "claim_token = '', claimed_at = NULL, next_attempt_at = NULL, last_error = '', updated_at = %s"
        )

    mine = f"{table}.claim_token = %s AND {table}.status = 'claimed'"
    with connection.cursor() as cursor:
        if len(set(message_ids)) == 1:  # a batch API's one id for the whole batch
            in_ids, id_params = _is_one_of("id", ids)
            cursor.execute(f"{sent_set('%s')} WHERE {in_ids} AND {mine}", [now, message_ids[0], now, *id_params, token])
        elif connection.vendor == "postgresql":
            cursor.execute(
                f"{sent_set('v.mid')} FROM unnest(%s::bigint[], %s::text[]) AS v(id, mid) "
                f"WHERE {table}.id = v.id AND {mine}",
                [now, now, ids, message_ids, token],
            )
        else:
            rows = ", ".join(["(CAST(%s AS BIGINT), %s)"] * len(ids))
            params = [value for pair in zip(ids, message_ids, strict=True) for value in pair]
            # VALUES columns are column1, column2 on SQLite; a statement that
            # starts with UPDATE (not WITH) reports its row count.
            cursor.execute(
                f"{sent_set('v.mid')} FROM (SELECT column1 AS id, column2 AS mid FROM (VALUES {rows}) AS vv) AS v "  # noqa: S608
                f"WHERE {table}.id = v.id AND {mine}",
                [now, now, *params, token],
            )
        count = cursor.rowcount
    # The reader's address or list changed since the ledger was written
    # (rare): record what their copy actually went to.
    for delivery_id, (list_id, email) in changed.items():
        if delivery_id in sent:
            Delivery.objects.filter(pk=delivery_id).update(email=email, mailing_list_id=list_id)
    sent_messages_record(issue_id, now, ids, message_ids)
    return count


def sent_messages_record(issue_id: int, now, ids: list[int], message_ids: list[str]) -> None:
    """Store each message id with the range of ledger ids it covers (one row per id)."""
    spans: dict[str, list[int]] = {}
    for delivery_id, message_id in zip(ids, message_ids, strict=True):
        span = spans.setdefault(message_id, [delivery_id, delivery_id])
        span[0], span[1] = min(span[0], delivery_id), max(span[1], delivery_id)
    if connection.vendor == "postgresql":
        table = SentMessage._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (provider_message_id, issue_id, first_delivery_id, last_delivery_id, "  # noqa: S608
                "created_at) SELECT v.mid, %s, v.low, v.high, %s "
                "FROM unnest(%s::text[], %s::bigint[], %s::bigint[]) AS v(mid, low, high)",
                [issue_id, now, list(spans), [s[0] for s in spans.values()], [s[1] for s in spans.values()]],
            )
        return
    SentMessage.objects.bulk_create(
        [
            SentMessage(
                provider_message_id=message_id,
                issue_id=issue_id,
                first_delivery_id=low,
                last_delivery_id=high,
                created_at=now,
            )
            for message_id, (low, high) in spans.items()
        ]
    )


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


def _grouped(values: dict[int, object]) -> dict[object, list[int]]:
    """Return the ids (keys) grouped by their value."""
    groups: dict[object, list[int]] = {}
    for key, value in values.items():
        groups.setdefault(value, []).append(key)
    return groups


def _skipped_record(token: str, skipped: dict[int, str]) -> None:
    now = timezone.now()
    for reason, ids in _grouped(skipped).items():
        Delivery.objects.filter(id__in=ids, claim_token=token, status=Delivery.Status.CLAIMED).update(
            status=Delivery.Status.SKIPPED, last_error=reason, claim_token="", claimed_at=None, updated_at=now
        )


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


def deliveries_reap(*, older_than: timedelta | None = None) -> int:
    """Return rows claimed by a worker that stopped to the queue; return how many.

    Such a row may have reached its reader just before the worker died, so
    it is marked reclaimed: the issue's report counts these as possible
    duplicates.
    """
    cutoff = timezone.now() - (older_than or timedelta(seconds=settings.SEND_CLAIM_TIMEOUT))
    now = timezone.now()
    # Claims exist only in issues that are sending or were stopped mid-send;
    # looking only there keeps the reaper off the ledgers of finished issues.
    unfinished = Issue.objects.filter(
        Q(status__in=[Issue.Status.SENDING, Issue.Status.PAUSED])
        | Q(status=Issue.Status.CANCELLED, updated_at__gte=now - timedelta(days=2))
    ).values("id")
    return Delivery.objects.filter(
        issue_id__in=unfinished, status=Delivery.Status.CLAIMED, claimed_at__lt=cutoff
    ).update(status=Delivery.Status.PENDING, claim_token="", claimed_at=None, reclaimed_at=now, updated_at=now)


def issues_needing_lanes() -> list[int]:
    """Return sending issues that no worker has touched within SEND_ALIVE_TTL.

    Re-queueing lanes for one is always safe: a lane that finds nothing to
    claim finishes the issue or waits for its retries.
    """
    sending = Issue.objects.filter(status=Issue.Status.SENDING, ledger_written_at__isnull=False)
    return [issue_id for issue_id in sending.values_list("id", flat=True) if not issue_is_alive(issue_id=issue_id)]


def issues_needing_ledger() -> list[int]:
    """Return sending issues whose ledger writing stopped part-way (the writer died) within SEND_ALIVE_TTL."""
    unwritten = Issue.objects.filter(status=Issue.Status.SENDING, ledger_written_at__isnull=True)
    return [issue_id for issue_id in unwritten.values_list("id", flat=True) if not ledger_is_alive(issue_id=issue_id)]


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

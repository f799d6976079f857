"""The delivery ledger: one row per issue and reader, written in chunks while the first batches go out."""

from __future__ import annotations

import redis
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, Max, Min, OuterRef
from django.utils import timezone

from dwvlist.celery import task_queue
from dwvlist.redis import issue_ledger_key, redis_client
from issues.models import Delivery, Issue
from subscriptions.models import Subscriber, Subscription, Suppression


def ledger_mark_alive(*, issue_id: int) -> None:
    """Record that the issue's ledger is being written now (lanes waiting for it do not count)."""
    try:
        redis_client().set(issue_ledger_key(issue_id), "1", ex=settings.SEND_ALIVE_TTL)
    except redis.RedisError:
        pass  # at worst the reaper starts a second, harmless, writer


def ledger_is_alive(*, issue_id: int) -> bool:
    """Return True if the issue's ledger was being written within SEND_ALIVE_TTL."""
    return bool(redis_client().exists(issue_ledger_key(issue_id)))


def issues_needing_ledger() -> list[int]:
    """Return sending issues whose ledger writing stopped part-way (the writer died) within SEND_ALIVE_TTL."""
    unwritten = Issue.objects.filter(status=Issue.Status.SENDING, ledger_written_at__isnull=True)
    return [issue_id for issue_id in unwritten.values_list("id", flat=True) if not ledger_is_alive(issue_id=issue_id)]


def _recipients(issue: Issue):
    list_ids = list(issue.lists.values_list("id", flat=True))
    suppressed = Suppression.objects.exclude(email="").filter(email__iexact=OuterRef("email"))
    return (
        Subscriber.objects.filter(
            subscriptions__mailing_list_id__in=list_ids,
            subscriptions__status=Subscription.Status.ACTIVE,
            subscriptions__confirmed_at__isnull=False,
        )
        .exclude(Exists(suppressed))
        .distinct()
    )


def issue_recipient_count(*, issue: Issue) -> int:
    """Return how many readers the issue would reach now, each counted once."""
    return _recipients(issue).count()


LEDGER_CHUNK = 100_000  # subscriber ids per INSERT ... SELECT


def _ledger_chunk_write(issue: Issue, list_ids: list[int], low: int, high: int, now) -> int:
    """Write the ledger rows of readers with ids in [low, high) in one statement; return rows added.

    Each reader is counted once however many of the lists they are on, and
    gets the issue through the first of those lists. Safe to run twice:
    the unique (issue, subscriber) pair makes a second run add nothing.
    """
    placeholders = ", ".join(["%s"] * len(list_ids))
    delivery = Delivery._meta.db_table
    subscriber = Subscriber._meta.db_table
    subscription = Subscription._meta.db_table
    suppression = Suppression._meta.db_table
    sql = f"""
        INSERT INTO {delivery}
            (issue_id, subscriber_id, mailing_list_id, email, status, attempts, last_error, claim_token,
             provider_message_id, created_at, updated_at)
        SELECT %s, s.id, MIN(sub.mailing_list_id), s.email, 'pending', 0, '', '', '', %s, %s
          FROM {subscriber} s
          JOIN {subscription} sub ON sub.subscriber_id = s.id
         WHERE s.id >= %s AND s.id < %s
           AND sub.subscriber_id >= %s AND sub.subscriber_id < %s
           AND sub.mailing_list_id IN ({placeholders})
           AND sub.status = 'active'
           AND sub.confirmed_at IS NOT NULL
           AND NOT EXISTS (
               SELECT 1 FROM {suppression} x WHERE x.email <> '' AND LOWER(x.email) = LOWER(s.email))
         GROUP BY s.id, s.email
        ON CONFLICT (issue_id, subscriber_id) DO NOTHING
    """  # noqa: S608 (table names from the models, values as parameters)
    with connection.cursor() as cursor:
        cursor.execute(sql, [issue.pk, now, now, low, high, low, high, *list_ids])
        return cursor.rowcount


def _delivery_id_max() -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT MAX(id) FROM {Delivery._meta.db_table}")  # noqa: S608
        return cursor.fetchone()[0] or 0


def _issue_delivery_id_first(issue_id: int, *, after: int) -> int | None:
    """Return the issue's lowest ledger id above `after` (walking the primary key from there)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT MIN(id) FROM {Delivery._meta.db_table} WHERE id > %s AND issue_id + 0 = %s",  # noqa: S608
            [after, issue_id],
        )
        return cursor.fetchone()[0]


def ledger_write(*, issue: Issue, on_first_chunk=None) -> int:
    """Write one pending Delivery per reader of the issue's lists; return rows added.

    Set-based SQL, one INSERT ... SELECT per range of LEDGER_CHUNK reader
    ids, each committed on its own with the issue's ledger id bounds, so
    workers can send the first readers while the rest are written;
    `on_first_chunk` runs once the first rows are committed. The ledger
    counts as written (and the issue can finish) only when every chunk is.
    Readers whose ids are beyond the highest one when writing began joined
    after sending started and are left out. Running it again (after a
    crash) completes the ledger without adding duplicates.
    """
    list_ids = list(issue.lists.values_list("id", flat=True))
    if not list_ids:
        return 0
    now = timezone.now()
    bounds = Subscriber.objects.aggregate(low=Min("id"), high=Max("id"))
    low, high = bounds["low"] or 0, bounds["high"] or -1
    added = 0
    chunk_low = low
    while True:
        ledger_mark_alive(issue_id=issue.pk)
        if _ledger_stop_if_cancelled(issue):
            return added
        chunk_high = min(chunk_low + LEDGER_CHUNK, high + 1)
        with transaction.atomic():
            before = _delivery_id_max()
            added += _ledger_chunk_write(issue, list_ids, chunk_low, chunk_high, now) if chunk_low <= high else 0
            after = _delivery_id_max()
            fields = {"ledger_id_max": after}
            if issue.ledger_id_min is None:
                first = _issue_delivery_id_first(issue.pk, after=before)
                fields["ledger_id_min"] = issue.ledger_id_min = first if first is not None else after + 1
            if chunk_high > high:
                fields["ledger_written_at"] = timezone.now()
            Issue.objects.filter(pk=issue.pk).update(**fields)
        if on_first_chunk is not None:
            on_first_chunk()
            on_first_chunk = None
        if chunk_high > high:
            _ledger_stop_if_cancelled(issue)
            return added
        chunk_low = chunk_high


def _ledger_stop_if_cancelled(issue: Issue) -> bool:
    """If the issue was cancelled while its ledger was written, cancel the rows written since; return True."""
    if not Issue.objects.filter(pk=issue.pk, status=Issue.Status.CANCELLED).exists():
        return False
    Delivery.objects.filter(issue_id=issue.pk, status=Delivery.Status.PENDING).update(
        status=Delivery.Status.CANCELLED, updated_at=timezone.now()
    )
    return True


def lanes_start(issue_id: int) -> None:
    """Queue the issue's batch tasks, SEND_LANES of them, each sending batch after batch."""
    for _ in range(settings.SEND_LANES):
        task_queue("issues.tasks.send_batch", issue_id)


def ledger_complete(*, issue: Issue) -> int:
    """Write (or finish writing) the issue's ledger and start its batch tasks; return rows added."""
    issue_id = issue.pk
    return ledger_write(issue=issue, on_first_chunk=lambda: transaction.on_commit(lambda: lanes_start(issue_id)))

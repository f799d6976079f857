"""Claiming the ledger's rows: a batch at a time, by id range, and the reaper that returns rows a dead worker held."""

from __future__ import annotations

from datetime import timedelta

import redis
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from dwvlist.redis import issue_alive_key, issue_cursor_key, redis_client
from issues.models import Delivery, Issue

OPEN_STATUSES = (Delivery.Status.PENDING, Delivery.Status.CLAIMED, Delivery.Status.DEFERRED)


def issue_mark_alive(*, issue_id: int) -> None:
    """Record that a worker is working on the issue now."""
    try:
        redis_client().set(issue_alive_key(issue_id), "1", ex=settings.SEND_ALIVE_TTL)
    except redis.RedisError:
        pass  # the reaper will re-queue if needed; the ledger is unaffected


def issue_is_alive(*, issue_id: int) -> bool:
    """Return True if a worker touched the issue within SEND_ALIVE_TTL."""
    return bool(redis_client().exists(issue_alive_key(issue_id)))


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
        start, stop = redis_client().eval(
            _RANGE_SCRIPT, 1, issue_cursor_key(issue.pk), issue.ledger_id_min, issue.ledger_id_max, size, 86400
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

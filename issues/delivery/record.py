"""Recording what a batch came to: sent with its message ids, failed, deferred for a retry, skipped."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from issues.delivery.claims import _is_one_of
from issues.delivery.transports.base import PERMANENT, SENT
from issues.models import Delivery, Issue, SentMessage

log = logging.getLogger(__name__)


@dataclass
class BatchResult:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    deferred: int = 0
    skipped: int = 0
    wait: float = 0.0  # seconds until work may be available (rate limit, retries)
    done: bool = False  # the issue has nothing left to send
    batch: str = ""  # the claim token's first characters, naming the batch in logs
    provider: str = ""


def _retry_delay(attempts: int) -> timedelta:
    base = settings.SEND_RETRY_BASE_SECONDS
    return timedelta(seconds=min(base * (2 ** max(0, attempts - 1)), 3600))


def _retry_or_give_up(rows, *, error: str, attempts: int, now) -> tuple[int, int]:
    """Defer the rows for a retry after their attempts, or fail them once SEND_MAX_ATTEMPTS is reached.

    Return (failed, deferred).
    """
    released = {"claim_token": "", "claimed_at": None, "updated_at": now}
    if attempts >= settings.SEND_MAX_ATTEMPTS:
        gave_up = f"gave up after {attempts} attempts: {error}"[:1000]
        failed = rows.update(
            status=Delivery.Status.FAILED, failure_kind=Delivery.Failure.TRANSIENT, last_error=gave_up, **released
        )
        return failed, 0
    return 0, rows.update(
        status=Delivery.Status.DEFERRED,
        last_error=error[:1000],
        next_attempt_at=now + _retry_delay(attempts),
        **released,
    )


def _record(issue: Issue, token: str, outcomes: dict, emails: dict[int, str], changed: dict) -> BatchResult:
    from subscriptions.suppressions import suppression_add

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
                status=Delivery.Status.FAILED,
                failure_kind=Delivery.Failure.PERMANENT,
                last_error=error,
                claim_token="",
                claimed_at=None,
                updated_at=now,
            )
            log.warning("readers failed: %s", error, extra={"readers": len(ids)})
        if transient:
            max_attempts = settings.SEND_MAX_ATTEMPTS
            attempts_of = dict(claimed.filter(id__in=list(transient)).values_list("id", "attempts"))
            endings = {d: (o.error, attempts_of.get(d, max_attempts)) for d, o in transient.items()}
            for (error, attempts), ids in _grouped(endings).items():
                failed, deferred = _retry_or_give_up(
                    claimed.filter(id__in=ids), error=error, attempts=attempts, now=now
                )
                result.failed += failed
                result.deferred += deferred
                if failed:
                    log.warning("readers failed after %d attempts: %s", attempts, error, extra={"readers": failed})
                elif deferred:
                    log.info("readers deferred: %s", error, extra={"readers": deferred, "attempts": attempts})
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
    failed = deferred = 0
    with transaction.atomic():
        for attempts in set(claimed.values_list("attempts", flat=True)):
            gave_up, waiting = _retry_or_give_up(
                claimed.filter(attempts=attempts), error=reason, attempts=attempts, now=now
            )
            failed += gave_up
            deferred += waiting
    return failed + deferred


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

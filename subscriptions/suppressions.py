"""The suppression list: addresses never to be mailed, found across key rotations.

A suppression is found by the keyed hash of its address (an erased
reader's row keeps nothing else). After SECRET_KEY is rotated, rows hashed
under the old key would no longer match; while that key is in
SECRET_KEY_FALLBACKS they are looked up under it too, and re-keyed to the
current key when found, so each row needs the fallback only once.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from dwvlist.logs import log_address
from dwvlist.metrics import metric_add
from subscriptions.addresses import email_hash, email_hashes
from subscriptions.models import Suppression

logger = logging.getLogger(__name__)

_IN_BATCH = 500


def _rekey(row: Suppression, current: str) -> Suppression:
    try:
        with transaction.atomic():
            Suppression.objects.filter(pk=row.pk).update(email_hash=current)
    except IntegrityError:  # a row under the current key exists too: it is the one that counts
        Suppression.objects.filter(pk=row.pk).delete()
        return Suppression.objects.get(email_hash=current)
    logger.info("suppression %s re-keyed to the current SECRET_KEY", row.pk)
    row.email_hash = current
    return row


def suppression_find(*, email: str) -> Suppression | None:
    """Return the address's suppression, under the current key or a fallback (re-keying it), or None."""
    hashes = email_hashes(email)
    rows = {row.email_hash: row for row in Suppression.objects.filter(email_hash__in=hashes)}
    if not rows:
        return None
    current = hashes[0]
    if current in rows:
        return rows[current]
    old = next(rows[h] for h in hashes[1:] if h in rows)
    return _rekey(old, current)


def suppressions_rekey(*, emails: Iterable[str]) -> int:
    """Re-key to the current key every suppression of these addresses found under a fallback key; return how many.

    For bulk paths (imports) that then match by the current hash alone.
    Nothing to do, and no query, without SECRET_KEY_FALLBACKS.
    """
    current_of: dict[str, str] = {}
    for email in emails:
        hashes = email_hashes(email)
        for old in hashes[1:]:
            current_of[old] = hashes[0]
    if not current_of:
        return 0
    olds = list(current_of)
    found = 0
    for i in range(0, len(olds), _IN_BATCH):
        for row in Suppression.objects.filter(email_hash__in=olds[i : i + _IN_BATCH]):
            _rekey(row, current_of[row.email_hash])
            found += 1
    return found


def suppression_exists(*, email: str) -> bool:
    """Return True if the address must never be mailed."""
    return suppression_find(email=email) is not None


def suppression_add(*, email: str, reason: str, event=None, note: str = "", keep_address: bool = True) -> Suppression:
    """Put the address on the suppression list (idempotent) and return its row.

    An address already suppressed keeps its first reason.
    """
    existing = suppression_find(email=email)
    if existing:
        return existing
    key = email_hash(email)
    try:
        with transaction.atomic():
            added = Suppression.objects.create(
                email_hash=key,
                email=email if keep_address else "",
                reason=reason,
                event=event,
                note=note[:500],
            )
    except IntegrityError:  # another process suppressed it at the same moment
        return Suppression.objects.get(email_hash=key)
    suppression_added_report(email=email, suppression=added)
    return added


def suppression_added_report(*, email: str, suppression: Suppression, count: bool = True) -> None:
    """Log the address (hashed, unless LOG_PERSONAL_DATA) put on the suppression list, and why; count it."""
    logger.info(
        "suppressed %s: %s",
        log_address(email),
        suppression.get_reason_display().lower(),
        extra={"reason": suppression.reason, "note": suppression.note, "event_id": suppression.event_id},
    )
    if count:
        metric_add("dwvlist_suppressions_added", reason=suppression.reason)


def suppression_remove(*, suppression_id: int, actor=None) -> bool:
    """Take an address off the suppression list; return False if it was not there.

    An erased reader's entry stays: they asked never to be mailed again,
    and only its hash is left to match against.
    """
    entry = Suppression.objects.filter(pk=suppression_id).first()
    if entry is None:
        return False
    if entry.reason == Suppression.Reason.ERASED or not entry.email:
        raise ValidationError("An erased reader's entry cannot be removed: they asked never to be mailed again.")
    return Suppression.objects.filter(pk=suppression_id).delete()[0] > 0


def suppressions_add(*, rows: list[Suppression]) -> list[Suppression]:
    """Put the rows' addresses on the suppression list in one statement; return the rows that were new.

    The set-wise suppression_add: idempotent, and an address already
    suppressed keeps its first reason (the first of `rows` wins among
    themselves). The rows need only email, reason, event_id and note.
    """
    by_hash: dict[str, Suppression] = {}
    for row in rows:
        if row.email:
            row.email_hash = email_hash(row.email)
            by_hash.setdefault(row.email_hash, row)
    if not by_hash:
        return []
    suppressions_rekey(emails=[row.email for row in by_hash.values()])
    now = timezone.now()
    ordered = [by_hash[key] for key in sorted(by_hash)]  # one order, so concurrent inserts never deadlock
    columns = ("email_hash", "email", "reason", "note", "event_id", "created_at")
    values = [(r.email_hash, r.email, r.reason, r.note[:500], r.event_id, r.created_at or now) for r in ordered]
    placeholders = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(values))
    sql = (
        f"INSERT INTO {Suppression._meta.db_table} ({', '.join(columns)}) VALUES {placeholders} "  # noqa: S608
        "ON CONFLICT (email_hash) DO NOTHING RETURNING id, email_hash"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for row in values for value in row])
        returned = cursor.fetchall()
    added = []
    for pk, key in returned:
        row = by_hash[key]
        row.pk = pk
        added.append(row)
        suppression_added_report(email=row.email, suppression=row, count=False)
    for reason, number in Counter(row.reason for row in added).items():
        metric_add("dwvlist_suppressions_added", number, reason=reason)
    return added

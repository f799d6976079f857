"""A request's stored events applied together: one grouped update per kind of effect.

The common kinds (delivered, opened, clicked, bounced) are applied to all
their ledger rows at once, with the same conditions as their rules in
issues.feedback.rules, so the result is the same in any order. Every other
kind goes through its rule in RULES one event at a time (they are rare:
complaints, unsubscribes, soft bounces, refusals), so a kind added to RULES
works here too with no change.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from django.db import connection
from django.utils import timezone

from issues.feedback.intake import Incoming
from issues.feedback.rules import RULES
from issues.models import Delivery, DeliveryEvent
from subscriptions.addresses import email_hash
from subscriptions.models import Suppression
from subscriptions.services import suppression_added_report

_TABLE = Delivery._meta.db_table


def _when(item: Incoming, now: datetime) -> datetime:
    return item.occurred_at or now


def _earliest(items: list[Incoming], now: datetime) -> dict[int, datetime]:
    """Return each delivery's earliest event time (the first applied wins under COALESCE)."""
    times: dict[int, datetime] = {}
    for item in items:
        if item.delivery is not None:
            when = _when(item, now)
            pk = item.delivery.pk
            times[pk] = min(times[pk], when) if pk in times else when
    return times


def _timed_update(times: dict[int, datetime], *, assignments: str, condition: str, kind: str) -> None:
    """Update each row with its own time: one statement on PostgreSQL, one per distinct time elsewhere.

    `assignments` and `condition` are SQL over the ledger row `d` and the
    row's time `v.t`; elsewhere the kind's rule does the same with the ORM.
    """
    if not times:
        return
    if connection.vendor == "postgresql":
        ids = sorted(times)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {_TABLE} AS d SET {assignments} "  # noqa: S608
                "FROM unnest(%s::bigint[], %s::timestamptz[]) AS v(id, t) "
                f"WHERE d.id = v.id AND ({condition})",
                [ids, [times[pk] for pk in ids]],
            )
        return
    by_time: dict[datetime, list[int]] = {}
    for pk, when in times.items():
        by_time.setdefault(when, []).append(pk)
    for when, ids in by_time.items():
        RULES[kind](None, Delivery.objects.filter(pk__in=ids), when)


def _delivered(items: list[Incoming], now: datetime) -> None:
    _timed_update(
        _earliest(items, now),
        assignments="status = CASE WHEN d.status = 'sent' THEN 'delivered' ELSE d.status END, "
        "delivered_at = COALESCE(d.delivered_at, v.t)",
        condition="d.status = 'sent' OR (d.delivered_at IS NULL AND d.status <> 'bounced')",
        kind="delivered",
    )


def _opened(items: list[Incoming], now: datetime) -> None:
    _timed_update(_earliest(items, now), assignments="opened_at = v.t", condition="d.opened_at IS NULL", kind="opened")


def _clicked(items: list[Incoming], now: datetime) -> None:
    _timed_update(
        _earliest(items, now),
        assignments="clicked_at = COALESCE(d.clicked_at, v.t), opened_at = COALESCE(d.opened_at, v.t)",
        condition="d.clicked_at IS NULL OR d.opened_at IS NULL",
        kind="clicked",
    )


def _bounced(items: list[Incoming], now: datetime) -> None:
    # The address is suppressed with its first reason kept (an existing row
    # wins the conflict), then the rows that were sent or delivered bounce.
    suppressions: dict[str, Suppression] = {}
    for item in items:
        address = item.recipient or (item.delivery.email if item.delivery else "")
        if address and email_hash(address) not in suppressions:
            suppressions[email_hash(address)] = Suppression(
                email_hash=email_hash(address),
                email=address,
                reason=Suppression.Reason.HARD_BOUNCE,
                event_id=item.pk,
                note=item.description[:500],
                created_at=now,
            )
    if suppressions:
        known = set(Suppression.objects.filter(email_hash__in=list(suppressions)).values_list("email_hash", flat=True))
        Suppression.objects.bulk_create(list(suppressions.values()), ignore_conflicts=True)
        for key, suppression in suppressions.items():
            if key not in known:
                suppression_added_report(email=suppression.email, suppression=suppression)
    by_error: dict[str, list[int]] = {}
    for item in items:
        if item.delivery is not None:
            by_error.setdefault(item.description[:2000], []).append(item.delivery.pk)
    for error, ids in by_error.items():
        Delivery.objects.filter(pk__in=ids, status__in=(Delivery.Status.SENT, Delivery.Status.DELIVERED)).update(
            status=Delivery.Status.BOUNCED, last_error=error
        )


GROUPED: dict[str, Callable[[list[Incoming], datetime], None]] = {
    "delivered": _delivered,
    "opened": _opened,
    "clicked": _clicked,
    "bounced": _bounced,
}


def _as_event(item: Incoming, now: datetime) -> DeliveryEvent:
    return DeliveryEvent(
        pk=item.pk,
        provider=item.provider,
        event_id=item.key,
        event_type=item.event_type,
        delivery=item.delivery,
        recipient=item.recipient,
        message_id=item.message_id,
        reject_reason=item.reject_reason,
        description=item.description,
        occurred_at=item.occurred_at,
        received_at=now,
        applied_at=now,
        payload=item.payload,
    )


def effects_apply_grouped(items: list[Incoming], *, deadline: float) -> list[int]:
    """Apply the stored events' effects; return the ids of those left unapplied when the deadline passed.

    Runs inside the caller's transaction, which marked the events applied.
    """
    now = timezone.now()
    kinds: dict[str, list[Incoming]] = {}
    for item in items:
        kinds.setdefault(item.event_type, []).append(item)
    for kind, group in kinds.items():
        if kind in GROUPED:
            GROUPED[kind](group, now)
    leftover: list[int] = []
    for kind, group in kinds.items():
        rule = RULES.get(kind)
        if kind in GROUPED or rule is None:
            continue
        for item in group:
            if time.monotonic() >= deadline:
                leftover.append(item.pk)
                continue
            event = _as_event(item, now)
            rows = Delivery.objects.filter(pk=item.delivery.pk) if item.delivery else Delivery.objects.none()
            rule(event, rows, item.occurred_at or now)
    return leftover

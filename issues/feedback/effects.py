"""Stored events applied together (a webhook request's, a mailbox poll's): a few grouped statements per kind.

The common kinds (delivered, opened, clicked, bounced, complained, soft
bounces and delays) are applied to all their rows at once, with the same
conditions as their rules in issues.feedback.rules, so the result is the
same in any order: one suppression insert per kind, one ledger update, one
count of the soft-bounce runs. Every other kind goes through its rule in
RULES one event at a time (they are rare: unsubscribes, refusals), so a
kind added to RULES works here too with no change.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from django.conf import settings
from django.db import connection
from django.db.models.functions import Lower
from django.utils import timezone

from issues.feedback.events import SOFT_BOUNCED
from issues.feedback.intake import Incoming
from issues.feedback.rules import RULES, soft_bounce_runs
from issues.models import Delivery, DeliveryEvent
from subscriptions.models import Subscriber, Subscription, Suppression
from subscriptions.suppressions import suppressions_add
from subscriptions.unsubscribing import subscribers_unsubscribe_all

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


def _suppress(items: list[Incoming], *, reason: str, note: Callable[[Incoming], str], now: datetime) -> None:
    """Suppress each event's address in one statement; an address already suppressed keeps its first reason."""
    rows = [
        Suppression(email=_address(item), reason=reason, event_id=item.pk, note=note(item), created_at=now)
        for item in items
        if _address(item)
    ]
    suppressions_add(rows=rows)


def _address(item: Incoming) -> str:
    return item.recipient or (item.delivery.email if item.delivery else "")


def _status_set(items: list[Incoming], *, status: str, error: bool) -> None:
    """Move the events' sent or delivered ledger rows to `status` (with the event's words as last_error)."""
    errors: dict[int, str] = {}
    for item in items:  # the first event of a row wins, as when applied one by one
        if item.delivery is not None:
            errors.setdefault(item.delivery.pk, item.description[:2000])
    if not errors:
        return
    rows = Delivery.objects.filter(status__in=(Delivery.Status.SENT, Delivery.Status.DELIVERED))
    if not error:
        rows.filter(pk__in=list(errors)).update(status=status)
        return
    if connection.vendor == "postgresql":
        ids = sorted(errors)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {_TABLE} AS d SET status = %s, last_error = v.e "  # noqa: S608
                "FROM unnest(%s::bigint[], %s::text[]) AS v(id, e) "
                "WHERE d.id = v.id AND d.status IN ('sent', 'delivered')",
                [status, ids, [errors[pk] for pk in ids]],
            )
        return
    by_error: dict[str, list[int]] = {}
    for pk, text in errors.items():
        by_error.setdefault(text, []).append(pk)
    for text, ids in by_error.items():
        rows.filter(pk__in=ids).update(status=status, last_error=text)


def _bounced(items: list[Incoming], now: datetime) -> None:
    # The address is suppressed with its first reason kept, then the rows that were sent or delivered bounce.
    _suppress(items, reason=Suppression.Reason.HARD_BOUNCE, note=lambda item: item.description[:500], now=now)
    _status_set(items, status=Delivery.Status.BOUNCED, error=True)


def _soft_bounced(items: list[Incoming], now: datetime) -> None:
    # The run is counted once per reader over all the events stored with these.
    first: dict[int, Incoming] = {}
    for item in items:
        if item.delivery is not None and item.delivery.subscriber_id:
            first.setdefault(item.delivery.subscriber_id, item)
    if not first:
        return
    limit = settings.SOFT_BOUNCE_LIMIT
    runs = soft_bounce_runs(subscriber_ids=sorted(first))
    over = [item for subscriber_id, item in first.items() if runs.get(subscriber_id, 0) >= limit]
    _suppress(
        over, reason=Suppression.Reason.SOFT_BOUNCES, note=lambda _: f"{limit} issues in a row soft-bounced", now=now
    )


def _complained(items: list[Incoming], now: datetime) -> None:
    # Suppressed, unsubscribed from every list, and the copy marked complained.
    _suppress(items, reason=Suppression.Reason.COMPLAINT, note=lambda _: "", now=now)
    unlinked = {item.recipient.lower() for item in items if item.recipient and not _subscriber_id(item)}
    by_address: dict[str, int] = {}
    if unlinked:
        found = Subscriber.objects.annotate(address=Lower("email")).filter(address__in=sorted(unlinked))
        by_address = dict(found.values_list("address", "pk"))
    by_issue: dict[int | None, set[int]] = {}
    for item in items:
        subscriber_id = _subscriber_id(item) or by_address.get(item.recipient.lower())
        if subscriber_id:
            issue_id = item.delivery.issue_id if item.delivery else None
            by_issue.setdefault(issue_id, set()).add(subscriber_id)
    source = Subscription.UnsubscribeSource.COMPLAINT
    for issue_id, subscriber_ids in by_issue.items():
        subscribers_unsubscribe_all(subscriber_ids=sorted(subscriber_ids), source=source, issue_id=issue_id)
    _status_set(items, status=Delivery.Status.COMPLAINED, error=False)


def _subscriber_id(item: Incoming) -> int | None:
    return item.delivery.subscriber_id if item.delivery else None


# In this order: a late delivered never undoes a bounce, a hard bounce's reason wins over a run of soft ones.
GROUPED: dict[str, Callable[[list[Incoming], datetime], None]] = {
    "delivered": _delivered,
    "opened": _opened,
    "clicked": _clicked,
    "bounced": _bounced,
    "complained": _complained,
    SOFT_BOUNCED: _soft_bounced,
    "deferred": _soft_bounced,
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
    together: dict[Callable, list[Incoming]] = {}
    for kind, apply in GROUPED.items():  # kinds sharing a function (soft bounces, delays) are applied as one
        together.setdefault(apply, []).extend(kinds.get(kind, []))
    for apply, group in together.items():
        if group:
            apply(group, now)
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

"""The feedback rules: what each kind of event does to the ledger, the suppression list and subscriptions."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Q, QuerySet, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from dwvlist.celery import task_queue
from issues.feedback.events import SOFT_BOUNCED, SOFT_TYPES
from issues.models import Delivery, DeliveryEvent
from subscriptions.models import Subscriber, Subscription, Suppression
from subscriptions.services import (
    subscriber_unsubscribe_all,
    subscription_unsubscribe,
    suppression_add,
)

_SENT_OR_DELIVERED = (Delivery.Status.SENT, Delivery.Status.DELIVERED)


def _event_subscriber(event: DeliveryEvent) -> Subscriber | None:
    if event.delivery and event.delivery.subscriber_id:
        return event.delivery.subscriber
    if event.recipient:
        return Subscriber.objects.filter(email__iexact=event.recipient).first()
    return None


def _event_address(event: DeliveryEvent) -> str:
    return event.recipient or (event.delivery.email if event.delivery else "")


def soft_bounce_run(*, subscriber_id: int) -> int:
    """Return how many of the reader's latest issues in a row soft-bounced.

    Counted from the events (each issue once however often the provider
    retried), back to the latest delivery or hard bounce.
    """
    events = (
        DeliveryEvent.objects.filter(
            delivery__subscriber_id=subscriber_id, event_type__in=[*SOFT_TYPES, "delivered", "bounced"]
        )
        .order_by("-occurred_at", "-id")
        .values_list("event_type", "delivery_id")
    )
    issues: set[int] = set()
    limit = settings.SOFT_BOUNCE_LIMIT
    for event_type, delivery_id in events.iterator(chunk_size=200):
        if event_type not in SOFT_TYPES:
            break
        issues.add(delivery_id)
        if len(issues) >= limit:
            break
    return len(issues)


def event_apply(*, event_id: int, event: DeliveryEvent | None = None) -> None:
    """Apply one stored event's effects once, in any order, marking it applied in the same transaction.

    The mark is a conditional update, so running it again (a redelivered
    task, the sweep racing a slow queue) does nothing. `event` is the row
    when the caller has just stored it.
    """
    with transaction.atomic():
        if not DeliveryEvent.objects.filter(pk=event_id, applied_at__isnull=True).update(applied_at=timezone.now()):
            return
        if event is None:
            event = DeliveryEvent.objects.select_related("delivery", "delivery__subscriber").get(pk=event_id)
        _effects_apply(event)


def events_unapplied(*, older_than: float, limit: int = 10_000) -> list[int]:
    """Return the ids of events stored over `older_than` seconds ago and never applied, oldest first.

    Their queued task was lost (a Redis restart, a worker killed outright);
    the event row, not the broker, is the truth.
    """
    cutoff = timezone.now() - timedelta(seconds=older_than)
    return list(
        DeliveryEvent.objects.filter(applied_at__isnull=True, received_at__lt=cutoff)
        .order_by("received_at", "id")
        .values_list("id", flat=True)[:limit]
    )


def _delivered(event: DeliveryEvent, rows: QuerySet[Delivery], when) -> None:
    # The status only from "sent": a late delivered never undoes a bounce
    # or complaint; the time kept for any status but bounced.
    sent = Q(status=Delivery.Status.SENT)
    rows.filter(sent | (Q(delivered_at__isnull=True) & ~Q(status=Delivery.Status.BOUNCED))).update(
        status=Case(When(sent, then=Value(Delivery.Status.DELIVERED)), default=F("status")),
        delivered_at=Coalesce(F("delivered_at"), Value(when)),
    )


def _bounced(event: DeliveryEvent, rows: QuerySet[Delivery], when) -> None:
    address = _event_address(event)
    if address:
        suppression_add(email=address, reason=Suppression.Reason.HARD_BOUNCE, event=event, note=event.description)
    rows.filter(status__in=_SENT_OR_DELIVERED).update(
        status=Delivery.Status.BOUNCED, last_error=event.description[:2000]
    )


def _soft_bounced(event: DeliveryEvent, rows: QuerySet[Delivery], when) -> None:
    subscriber = event.delivery.subscriber if event.delivery else None
    if subscriber and soft_bounce_run(subscriber_id=subscriber.pk) >= settings.SOFT_BOUNCE_LIMIT:
        suppression_add(
            email=_event_address(event),
            reason=Suppression.Reason.SOFT_BOUNCES,
            event=event,
            note=f"{settings.SOFT_BOUNCE_LIMIT} issues in a row soft-bounced",
        )


def _complained(event: DeliveryEvent, rows: QuerySet[Delivery], when) -> None:
    address = _event_address(event)
    if address:
        suppression_add(email=address, reason=Suppression.Reason.COMPLAINT, event=event)
    subscriber = _event_subscriber(event)
    if subscriber:
        subscriber_unsubscribe_all(
            subscriber_id=subscriber.pk,
            source=Subscription.UnsubscribeSource.COMPLAINT,
            issue_id=event.delivery.issue_id if event.delivery else None,
        )
    rows.filter(status__in=_SENT_OR_DELIVERED).update(status=Delivery.Status.COMPLAINED)


def _unsubscribed(event: DeliveryEvent, rows: QuerySet[Delivery], when) -> None:
    delivery = event.delivery
    if not (delivery and delivery.subscriber_id):
        return
    list_ids = (
        [delivery.mailing_list_id] if delivery.mailing_list_id else delivery.issue.lists.values_list("pk", flat=True)
    )
    for list_id in list_ids:
        subscription_unsubscribe(
            subscriber_id=delivery.subscriber_id,
            list_id=list_id,
            source=Subscription.UnsubscribeSource.ESP,
            issue_id=delivery.issue_id,
        )


def _rejected(event: DeliveryEvent, rows: QuerySet[Delivery], when) -> None:
    # The provider refused to send, e.g. the address is on its own bounce
    # list: the message never left.
    if event.reject_reason in ("bounced", "invalid"):
        address = _event_address(event)
        if address:
            suppression_add(email=address, reason=Suppression.Reason.REJECTED, event=event, note=event.description)
    rows.filter(status=Delivery.Status.SENT).update(
        status=Delivery.Status.FAILED, last_error=(event.description or "rejected by the provider")[:2000]
    )


def _opened(event: DeliveryEvent, rows: QuerySet[Delivery], when) -> None:
    rows.filter(opened_at__isnull=True).update(opened_at=when)


def _clicked(event: DeliveryEvent, rows: QuerySet[Delivery], when) -> None:
    rows.filter(clicked_at__isnull=True).update(clicked_at=when)
    # A click implies the mail was opened, even with images blocked.
    rows.filter(opened_at__isnull=True).update(opened_at=when)


# One rule per kind of event: a new kind gets a function above and a line here.
RULES = {
    "delivered": _delivered,
    "bounced": _bounced,
    SOFT_BOUNCED: _soft_bounced,
    "deferred": _soft_bounced,
    "complained": _complained,
    "unsubscribed": _unsubscribed,
    "rejected": _rejected,
    "opened": _opened,
    "clicked": _clicked,
}


def _effects_apply(event: DeliveryEvent) -> None:
    rule = RULES.get(event.event_type)
    if rule is None:
        return  # recorded for the report, with no effect
    delivery = event.delivery
    rows = Delivery.objects.filter(pk=delivery.pk) if delivery else Delivery.objects.none()
    rule(event, rows, event.occurred_at or event.received_at)


def events_apply(*, event_ids: list[int]) -> None:
    """Apply several stored events' effects, oldest first."""
    for event_id in sorted(event_ids):
        event_apply(event_id=event_id)


QUEUE_CHUNK = 500  # events per task


def events_queue(*, event_ids: list[int]) -> None:
    """Queue the events' effects to workers, QUEUE_CHUNK events per task."""
    for start in range(0, len(event_ids), QUEUE_CHUNK):
        task_queue("issues.feedback_tasks.feedback_events_apply", event_ids[start : start + QUEUE_CHUNK])

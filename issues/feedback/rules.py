"""The feedback rules: what each kind of event does to the ledger, the suppression list and subscriptions."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Q, QuerySet, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from dwvlist.celery import task_queue
from issues.feedback.events import SOFT_BOUNCED, SOFT_TYPES, event_list_hint
from issues.models import Delivery, DeliveryEvent
from subscriptions.models import MailingList, Subscriber, Subscription, Suppression
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
    return soft_bounce_runs(subscriber_ids=[subscriber_id]).get(subscriber_id, 0)


def soft_bounce_runs(*, subscriber_ids: list[int]) -> dict[int, int]:
    """Return soft_bounce_run for each of these readers, read in one query (readers with no run are left out)."""
    events = (
        DeliveryEvent.objects.filter(
            delivery__subscriber_id__in=subscriber_ids, event_type__in=[*SOFT_TYPES, "delivered", "bounced"]
        )
        .order_by("delivery__subscriber_id", "-occurred_at", "-id")
        .values_list("delivery__subscriber_id", "event_type", "delivery_id")
    )
    issues: dict[int, set[int]] = {}
    ended: set[int] = set()
    wanted, limit = len(set(subscriber_ids)), settings.SOFT_BOUNCE_LIMIT
    for subscriber_id, event_type, delivery_id in events.iterator(chunk_size=200):
        if len(ended) == wanted:
            break  # a long history is not read further than it counts
        if subscriber_id in ended:
            continue
        if event_type not in SOFT_TYPES:
            ended.add(subscriber_id)
            continue
        run = issues.setdefault(subscriber_id, set())
        run.add(delivery_id)
        if len(run) >= limit:
            ended.add(subscriber_id)
    return {subscriber_id: len(run) for subscriber_id, run in issues.items()}


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


def _unsubscribed_unlinked(event: DeliveryEvent) -> None:
    # Better to stop mailing someone who asked than to keep going: the
    # address leaves the list the provider names, or every list (one
    # provider sends for all of them) when it names none we know.
    subscriber = _event_subscriber(event)
    if subscriber is None:
        return
    hint = event_list_hint(provider=event.provider, payload=event.payload)
    lists = MailingList.objects.filter(Q(slug__iexact=hint) | Q(from_email__iexact=hint)) if hint else None
    list_ids = list(lists.values_list("pk", flat=True)) if lists is not None else []
    if not list_ids:
        subscriber_unsubscribe_all(subscriber_id=subscriber.pk, source=Subscription.UnsubscribeSource.ESP)
        return
    source = Subscription.UnsubscribeSource.ESP
    for list_id in list_ids:
        subscription_unsubscribe(subscriber_id=subscriber.pk, list_id=list_id, source=source)


def _unsubscribed(event: DeliveryEvent, rows: QuerySet[Delivery], when) -> None:
    delivery = event.delivery
    if not (delivery and delivery.subscriber_id):
        _unsubscribed_unlinked(event)
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
        status=Delivery.Status.FAILED,
        failure_kind=Delivery.Failure.PERMANENT,
        last_error=(event.description or "rejected by the provider")[:2000],
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


def event_effects_apply(*, event: DeliveryEvent) -> None:
    """Apply the effects of an event its caller stored already marked applied, in the caller's transaction."""
    _effects_apply(event)


def events_apply(*, event_ids: list[int]) -> None:
    """Apply several stored events' effects, oldest first."""
    for event_id in sorted(event_ids):
        event_apply(event_id=event_id)


QUEUE_CHUNK = 500  # events per task


def events_queue(*, event_ids: list[int]) -> None:
    """Queue the events' effects to workers, QUEUE_CHUNK events per task."""
    for start in range(0, len(event_ids), QUEUE_CHUNK):
        task_queue("issues.feedback_tasks.feedback_events_apply", event_ids[start : start + QUEUE_CHUNK])

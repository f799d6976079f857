"""What happens after a mail leaves: provider events recorded once, acted on, counted.

Each normalised anymail tracking event becomes one DeliveryEvent row, unique
per provider and event id, so a replayed webhook is a no-op. Its effects
(delivery status, suppression, unsubscribes) are conditional updates that
give the same result whatever order the events arrive in.

Event ids: most providers give one per event; Postmark gives one only for
bounces and Brevo none at all, and Amazon SES gives one per notification
that may name several recipients. The stored id is therefore the provider's
id (or, lacking one, a SHA-256 of the provider's payload serialised with
sorted keys) joined with the recipient, hashed when it would not fit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Case, Count, F, Q, QuerySet, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from issues.models import Delivery, DeliveryEvent, Issue, SentMessage
from subscriptions.models import MailingList, Subscriber, Subscription, Suppression
from subscriptions.services import (
    subscriber_unsubscribe_all,
    subscription_unsubscribe,
    suppression_add,
)

logger = logging.getLogger(__name__)

# Our own event types, beyond anymail's: a bounce the provider calls
# temporary is "soft_bounced", never a reason to suppress on its own.
SOFT_BOUNCED = "soft_bounced"
SOFT_TYPES = (SOFT_BOUNCED, "deferred")
TRACKING_TYPES = ("opened", "clicked")
PAYLOAD_MAX_CHARS = 50_000

_SENT_OR_DELIVERED = (Delivery.Status.SENT, Delivery.Status.DELIVERED)


def provider_name(esp_name: str) -> str:
    """Return the stored provider name for anymail's esp_name ("Amazon SES" → "amazon_ses")."""
    return re.sub(r"[^a-z0-9]+", "_", esp_name.lower()).strip("_")


def payload_plain(esp_event) -> dict | list:
    """Return the provider's raw event as JSON-serialisable data."""
    if hasattr(esp_event, "lists"):  # a QueryDict from a form-encoded webhook
        return {key: values if len(values) > 1 else values[0] for key, values in esp_event.lists()}
    if isinstance(esp_event, dict | list):
        return esp_event
    return {"raw": str(esp_event)}


def event_key(*, event_id: str | None, payload, recipient: str) -> str:
    """Return the id an event is stored under (see the module docstring)."""
    base = event_id or "sha256:" + hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    key = f"{base}|{recipient.lower()}" if recipient else base
    if len(key) > 255:
        key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


def event_classify(*, provider: str, event_type: str, payload) -> str:
    """Return the event type to store: anymail's, with soft bounces told apart from hard ones.

    anymail reports some temporary bounces as "bounced"; the provider's own
    fields say which they are.
    """
    if not isinstance(payload, dict):
        return event_type
    if event_type == "bounced":
        soft = (
            (provider == "postmark" and payload.get("Type") in ("SoftBounce", "Transient", "DnsError"))
            or (provider in ("brevo", "sendinblue") and payload.get("event") == "soft_bounce")
            or (provider == "sendgrid" and payload.get("type") == "blocked")
            or (
                provider == "amazon_ses"
                and payload.get("bounce", {}).get("bounceType") in ("Transient", "Undetermined")
            )
        )
        return SOFT_BOUNCED if soft else event_type
    if event_type == "unknown" and provider == "amazon_ses":
        # SES's subscription-management event; anymail does not normalise it.
        topics = payload.get("subscription", {}).get("newTopicPreferences", {})
        if payload.get("eventType") == "Subscription" and topics.get("unsubscribeAll"):
            return "unsubscribed"
    return event_type


def delivery_find(*, message_id: str, metadata: dict, recipient: str) -> Delivery | None:
    """Return the delivery an event is about, or None.

    By the provider's message id first (with the recipient, because a batch
    send can share one id), else by the ids our engine put in the metadata.
    """
    if message_id:
        bare = message_id.strip().strip("<>")
        candidates = {message_id, bare, f"<{bare}>"}
        spans = SentMessage.objects.filter(provider_message_id__in=candidates).values_list(
            "issue_id", "first_delivery_id", "last_delivery_id"
        )[:20]
        within = Q()
        for issue_id, low, high in spans:
            within |= Q(issue_plain=issue_id, id__range=(low, high))
        if within:
            # The id range finds the rows through the primary key. issue_id + 0
            # keeps the planner off the issue index, which at a million rows
            # and stale statistics it would otherwise scan whole (0.15 s).
            matches = Delivery.objects.alias(issue_plain=F("issue_id") + 0).filter(
                within, provider_message_id__in=candidates
            )
            if recipient:
                found = matches.filter(email__iexact=recipient).first()
                if found:
                    return found
            rows = list(matches[:2])
            if len(rows) == 1:
                return rows[0]
    metadata = metadata if isinstance(metadata, dict) else {}
    delivery_id = str(metadata.get("delivery_id", ""))
    if delivery_id.isdigit():
        found = Delivery.objects.filter(pk=int(delivery_id)).first()
        if found:
            return found
    issue_id, subscriber_id = str(metadata.get("issue_id", "")), str(metadata.get("subscriber_id", ""))
    if issue_id.isdigit() and subscriber_id.isdigit():
        return Delivery.objects.filter(issue_id=int(issue_id), subscriber_id=int(subscriber_id)).first()
    return None


def tracking_list_ids() -> set[int]:
    """Return the ids of the lists that record opens and clicks (a handful, read once per webhook request)."""
    return set(MailingList.objects.filter(tracking_enabled=True).values_list("pk", flat=True))


def delivery_tracks(delivery: Delivery | None, tracking_lists: set[int] | None = None) -> bool:
    """Return True if opens and clicks may be recorded for this delivery."""
    if delivery is None:
        return False
    if tracking_lists is None:
        tracking_lists = tracking_list_ids()
    if delivery.mailing_list_id:
        return delivery.mailing_list_id in tracking_lists
    # A ledger row from before rows named their list: any of the issue's lists.
    return Issue.lists.through.objects.filter(issue_id=delivery.issue_id, mailinglist_id__in=tracking_lists).exists()


def event_record(*, provider: str, event, tracking_lists: set[int] | None = None) -> DeliveryEvent | None:
    """Store one normalised anymail tracking event; return it, or None if already stored or not kept.

    Opens and clicks are kept only for lists with tracking on (`tracking_lists`,
    read here when the caller has not).
    """
    payload = payload_plain(event.esp_event)
    recipient = (event.recipient or "")[:254]
    event_type = event_classify(provider=provider, event_type=event.event_type or "unknown", payload=payload)
    message_id = (event.message_id or "")[:255]
    delivery = delivery_find(message_id=message_id, metadata=event.metadata or {}, recipient=recipient)
    if event_type in TRACKING_TYPES and not delivery_tracks(delivery, tracking_lists):
        return None
    key = event_key(event_id=event.event_id, payload=payload, recipient=recipient)
    if len(json.dumps(payload, default=str)) > PAYLOAD_MAX_CHARS:
        payload = {"truncated": True}
    description = " ".join(part for part in (event.description, event.mta_response) if part)
    try:
        with transaction.atomic():
            return DeliveryEvent.objects.create(
                provider=provider[:40],
                event_id=key,
                event_type=event_type[:40],
                delivery=delivery,
                recipient=recipient,
                message_id=message_id,
                reject_reason=(event.reject_reason or "")[:100],
                description=description[:2000],
                occurred_at=event.timestamp,
                payload=json.loads(json.dumps(payload, default=str)),
            )
    except IntegrityError:  # a replay: the unique constraint says we have it
        return None


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


def _effects_apply(event: DeliveryEvent) -> None:
    delivery = event.delivery
    when = event.occurred_at or event.received_at
    rows = Delivery.objects.filter(pk=delivery.pk) if delivery else Delivery.objects.none()
    kind = event.event_type

    if kind == "delivered":
        # The status only from "sent": a late delivered never undoes a bounce
        # or complaint; the time kept for any status but bounced.
        sent = Q(status=Delivery.Status.SENT)
        rows.filter(sent | (Q(delivered_at__isnull=True) & ~Q(status=Delivery.Status.BOUNCED))).update(
            status=Case(When(sent, then=Value(Delivery.Status.DELIVERED)), default=F("status")),
            delivered_at=Coalesce(F("delivered_at"), Value(when)),
        )
    elif kind == "bounced":
        address = _event_address(event)
        if address:
            suppression_add(email=address, reason=Suppression.Reason.HARD_BOUNCE, event=event, note=event.description)
        rows.filter(status__in=_SENT_OR_DELIVERED).update(
            status=Delivery.Status.BOUNCED, last_error=event.description[:2000]
        )
    elif kind in SOFT_TYPES:
        subscriber = delivery.subscriber if delivery else None
        if subscriber and soft_bounce_run(subscriber_id=subscriber.pk) >= settings.SOFT_BOUNCE_LIMIT:
            suppression_add(
                email=_event_address(event),
                reason=Suppression.Reason.SOFT_BOUNCES,
                event=event,
                note=f"{settings.SOFT_BOUNCE_LIMIT} issues in a row soft-bounced",
            )
    elif kind == "complained":
        address = _event_address(event)
        if address:
            suppression_add(email=address, reason=Suppression.Reason.COMPLAINT, event=event)
        subscriber = _event_subscriber(event)
        if subscriber:
            subscriber_unsubscribe_all(
                subscriber_id=subscriber.pk,
                source=Subscription.UnsubscribeSource.COMPLAINT,
                issue_id=delivery.issue_id if delivery else None,
            )
        rows.filter(status__in=_SENT_OR_DELIVERED).update(status=Delivery.Status.COMPLAINED)
    elif kind == "unsubscribed":
        if delivery and delivery.subscriber_id:
            list_ids = (
                [delivery.mailing_list_id]
                if delivery.mailing_list_id
                else delivery.issue.lists.values_list("pk", flat=True)
            )
            for list_id in list_ids:
                subscription_unsubscribe(
                    subscriber_id=delivery.subscriber_id,
                    list_id=list_id,
                    source=Subscription.UnsubscribeSource.ESP,
                    issue_id=delivery.issue_id,
                )
    elif kind == "rejected":
        # The provider refused to send, e.g. the address is on its own
        # bounce list: the message never left.
        if event.reject_reason in ("bounced", "invalid"):
            address = _event_address(event)
            if address:
                suppression_add(email=address, reason=Suppression.Reason.REJECTED, event=event, note=event.description)
        rows.filter(status=Delivery.Status.SENT).update(
            status=Delivery.Status.FAILED, last_error=(event.description or "rejected by the provider")[:2000]
        )
    elif kind == "opened":
        rows.filter(opened_at__isnull=True).update(opened_at=when)
    elif kind == "clicked":
        rows.filter(clicked_at__isnull=True).update(clicked_at=when)
        # A click implies the mail was opened, even with images blocked.
        rows.filter(opened_at__isnull=True).update(opened_at=when)


def events_apply(*, event_ids: list[int]) -> None:
    """Apply several stored events' effects, oldest first."""
    for event_id in sorted(event_ids):
        event_apply(event_id=event_id)


# --- Figures ------------------------------------------------------------------------


def issue_figures(*, issue: Issue) -> dict:
    """Return the issue's figures, counted from the ledger (one grouped, indexed query).

    sent counts every message the provider accepted (whatever happened
    next); delivered includes those later reported as spam, which had to be
    delivered first. opened and clicked are None unless a list of the issue
    has tracking on.
    """
    by_status = dict(
        Delivery.objects.filter(issue=issue).values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    status = Delivery.Status
    figures = {
        "recipients": sum(by_status.values()),
        "sent": sum(by_status.get(s, 0) for s in (status.SENT, status.DELIVERED, status.BOUNCED, status.COMPLAINED)),
        "delivered": by_status.get(status.DELIVERED, 0) + by_status.get(status.COMPLAINED, 0),
        "bounced": by_status.get(status.BOUNCED, 0),
        "complained": by_status.get(status.COMPLAINED, 0),
        "failed": by_status.get(status.FAILED, 0),
        "unsubscribed": Subscription.objects.filter(unsubscribe_issue=issue).count(),
        "opened": None,
        "clicked": None,
    }
    if issue.lists.filter(tracking_enabled=True).exists():
        tracked = Delivery.objects.filter(issue=issue).aggregate(
            opened=Count("id", filter=Q(opened_at__isnull=False)),
            clicked=Count("id", filter=Q(clicked_at__isnull=False)),
        )
        figures.update(tracked)
    return figures


def list_figures(*, mailing_list: MailingList) -> dict:
    """Return the list's figures: readers by status, unsubscribes by source, suppressions among its readers."""
    subscriptions = Subscription.objects.filter(mailing_list=mailing_list)
    by_status = dict(subscriptions.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    by_source = dict(
        subscriptions.filter(status=Subscription.Status.UNSUBSCRIBED)
        .values_list("unsubscribe_source")
        .annotate(n=Count("id"))
        .values_list("unsubscribe_source", "n")
    )
    return {
        "active": by_status.get(Subscription.Status.ACTIVE, 0),
        "pending": by_status.get(Subscription.Status.PENDING, 0),
        "unsubscribed": by_status.get(Subscription.Status.UNSUBSCRIBED, 0),
        "unsubscribed_by_source": by_source,
        "bounced": Delivery.objects.filter(mailing_list=mailing_list, status=Delivery.Status.BOUNCED).count(),
        "complained": Delivery.objects.filter(mailing_list=mailing_list, status=Delivery.Status.COMPLAINED).count(),
    }


def events_for_issue(*, issue: Issue) -> QuerySet[DeliveryEvent]:
    """Return the provider events about the issue's deliveries, newest first."""
    return DeliveryEvent.objects.filter(delivery__issue=issue).order_by("-received_at")

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

from django.db import IntegrityError, transaction
from django.db.models import F, Q

from dwvlist.metrics import metric_add, metric_observe, metrics_deferred
from issues.models import Delivery, DeliveryEvent, Issue, SentMessage
from subscriptions.models import MailingList

logger = logging.getLogger(__name__)

# Our own event types, beyond anymail's: a bounce the provider calls
# temporary is "soft_bounced", never a reason to suppress on its own.
SOFT_BOUNCED = "soft_bounced"
SOFT_TYPES = (SOFT_BOUNCED, "deferred")
TRACKING_TYPES = ("opened", "clicked")
PAYLOAD_MAX_CHARS = 50_000
# What the feedback admin filters on (a fixed list, not a DISTINCT over the table).
EVENT_TYPES = (
    "delivered", "bounced", SOFT_BOUNCED, "deferred", "complained", "unsubscribed", "rejected", "failed",
    "opened", "clicked", "queued", "sent", "subscribed", "autoresponded", "inbound", "unknown",
)  # fmt: skip
EVENT_PROVIDERS = ("amazon_ses", "brevo", "mailgun", "mailjet", "postmark", "sendgrid", "sparkpost", "smtp")


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


_MAILGUN_SIGNATURE_FIELDS = ("token", "timestamp", "signature")


def provider_event_id(*, provider: str, event_id: str | None, payload) -> str | None:
    """Return the provider's own id of the event, which stays the same when the provider signs it again.

    anymail takes Mailgun's signature token as the event id, and a token is
    new with every signing; the event's own id (unique within a day, so
    with its timestamp) is what names the event. Mailgun's legacy form
    posts have none: their fields other than the signature's are hashed.
    """
    if provider != "mailgun" or not isinstance(payload, dict):
        return event_id
    data = payload.get("event-data")
    if isinstance(data, dict) and data.get("id"):
        return f"{data['id']}@{data.get('timestamp', '')}"
    if "event" in payload or "Event" in payload:
        fields = {k: v for k, v in payload.items() if k not in _MAILGUN_SIGNATURE_FIELDS}
        return "sha256:" + hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()
    return event_id


def event_key(*, event_id: str | None, payload, recipient: str) -> str:
    """Return the id an event is stored under (see the module docstring)."""
    base = event_id or "sha256:" + hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    key = f"{base}|{recipient.lower()}" if recipient else base
    if len(key) > 255:
        key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


# Event names the providers document that anymail 15 leaves "unknown" (or
# that have a meaning of their own here), by provider and raw name.
PROVIDER_TYPES: dict[tuple[str, str], str] = {
    # Brevo's transactional webhooks say "unsubscribed"; its marketing
    # webhooks spell some names in camelCase.
    ("brevo", "unsubscribed"): "unsubscribed",
    ("brevo", "hardBounce"): "bounced",
    ("brevo", "softBounce"): SOFT_BOUNCED,
    ("brevo", "uniqueOpened"): "opened",
    ("brevo", "invalid"): "bounced",
    ("brevo", "sent"): "queued",
    ("brevo", "listAddition"): "subscribed",
    ("brevo", "list_addition"): "subscribed",
    # Amazon SES event publishing: a delay is a temporary failure.
    ("amazon_ses", "DeliveryDelay"): "deferred",
    ("amazon_ses", "Send"): "sent",
    # Mailgun: a message received and stored for later retrieval.
    ("mailgun", "stored"): "inbound",
    ("mailgun", "accepted"): "queued",
    # Postmark's bounce of a kind it could not classify: never a reason to
    # suppress on its own, so it counts as soft.
    ("postmark", "Unknown"): SOFT_BOUNCED,
    ("sendgrid", "processed"): "queued",
    ("sendgrid", "group_resubscribe"): "subscribed",
}


def provider_event_name(*, provider: str, payload) -> str:
    """Return the provider's own name for the event in its raw payload ("" if none)."""
    if not isinstance(payload, dict):
        return ""
    if provider == "amazon_ses":
        name = payload.get("eventType") or payload.get("notificationType")
    elif provider == "mailgun":
        data = payload.get("event-data")
        name = data.get("event") if isinstance(data, dict) else payload.get("event")
    elif provider == "postmark":
        name = payload.get("Type") if payload.get("RecordType") == "Bounce" else payload.get("RecordType")
    else:
        name = payload.get("event")
    return name if isinstance(name, str) else ""


def _ses_subscription_type(payload: dict) -> str:
    """Return "unsubscribed" if an SES Subscription event opts the reader out of anything, else "subscribed"."""
    subscription = payload.get("subscription")
    if not isinstance(subscription, dict):
        return "unknown"
    new = subscription.get("newTopicPreferences") or {}
    if not isinstance(new, dict):
        return "unknown"
    if new.get("unsubscribeAll"):
        return "unsubscribed"
    topics = new.get("topicSubscriptionStatus") or []
    if any(isinstance(t, dict) and str(t.get("subscriptionStatus", "")).lower() == "optout" for t in topics):
        return "unsubscribed"
    return "subscribed"


def event_list_hint(*, provider: str, payload) -> str:
    """Return the name of the list an unsubscribe event names, if the provider gives one ("" if not)."""
    if not isinstance(payload, dict):
        return ""
    if provider == "amazon_ses":
        subscription = payload.get("subscription")
        if isinstance(subscription, dict):
            topics = (subscription.get("newTopicPreferences") or {}).get("topicSubscriptionStatus") or []
            for topic in topics:
                if isinstance(topic, dict) and str(topic.get("subscriptionStatus", "")).lower() == "optout":
                    return str(topic.get("topicName") or "")
            return str(subscription.get("contactList") or "")
    if provider == "mailgun":
        data = payload.get("event-data")
        mailing_list = data.get("mailing-list") if isinstance(data, dict) else None
        if isinstance(mailing_list, dict):
            return str(mailing_list.get("address") or "")
    return ""


def event_classify(*, provider: str, event_type: str, payload) -> str:
    """Return the event type to store: anymail's, with soft bounces told apart from hard ones.

    anymail reports some temporary bounces as "bounced"; the provider's own
    fields say which they are. Event names anymail does not know (it says
    "unknown") are read from the provider's payload (PROVIDER_TYPES).
    """
    if not isinstance(payload, dict):
        return event_type
    if event_type == "bounced":
        soft = (
            (provider == "postmark" and payload.get("Type") in ("SoftBounce", "Transient", "DnsError", "Unknown"))
            or (provider in ("brevo", "sendinblue") and payload.get("event") in ("soft_bounce", "softBounce"))
            or (provider == "sendgrid" and payload.get("type") == "blocked")
            or (
                provider == "amazon_ses"
                and isinstance(payload.get("bounce"), dict)
                and payload["bounce"].get("bounceType") in ("Transient", "Undetermined")
            )
        )
        return SOFT_BOUNCED if soft else event_type
    if event_type == "unknown":
        provider = "brevo" if provider == "sendinblue" else provider
        name = provider_event_name(provider=provider, payload=payload)
        if provider == "amazon_ses" and name == "Subscription":
            return _ses_subscription_type(payload)
        return PROVIDER_TYPES.get((provider, name), event_type)
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
    event_id = provider_event_id(provider=provider, event_id=event.event_id, payload=payload)
    key = event_key(event_id=event_id, payload=payload, recipient=recipient)
    if len(json.dumps(payload, default=str)) > PAYLOAD_MAX_CHARS:
        payload = {"truncated": True}
    description = " ".join(part for part in (event.description, event.mta_response) if part)
    try:
        with transaction.atomic():
            stored = DeliveryEvent.objects.create(
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
    event_stored_report(event=stored)
    return stored


def event_stored_report(*, event: DeliveryEvent) -> None:
    """Count the stored event by type, and how long after it happened it reached us."""
    metric_add("dwvlist_webhook_events", provider=event.provider, event_type=event.event_type)
    if event.occurred_at is not None:
        lag = max(0.0, (event.received_at - event.occurred_at).total_seconds())
        metric_observe("dwvlist_webhook_event_lag_seconds", lag, provider=event.provider)


def events_stored_report(*, events, received_at) -> None:
    """Count stored events by provider and type, and how long after they happened they reached us (one round trip)."""
    counts: dict[tuple[str, str], int] = {}
    lags: dict[str, tuple[int, float]] = {}
    for event in events:
        counts[(event.provider, event.event_type)] = counts.get((event.provider, event.event_type), 0) + 1
        if event.occurred_at is not None:
            lag = max(0.0, (received_at - event.occurred_at).total_seconds())
            seen, total = lags.get(event.provider, (0, 0.0))
            lags[event.provider] = (seen + 1, total + lag)
    with metrics_deferred():
        for (provider, event_type), count in counts.items():
            metric_add("dwvlist_webhook_events", count, provider=provider, event_type=event_type)
        for provider, (seen, total) in lags.items():
            metric_observe("dwvlist_webhook_event_lag_seconds", total, count=seen, provider=provider)

"""A webhook request's events taken in together: classified, found, stored and applied in a few statements.

A SendGrid post carries up to about a thousand events, and a busy send brings
a million; handled one by one, each costs about nine queries. Here the whole
request's events are classified in Python, their deliveries found with one
query on SentMessage and one on the ledger, stored with one INSERT ... ON
CONFLICT DO NOTHING RETURNING (so a replayed event stores nothing and is
applied nowhere), and applied with one grouped UPDATE per kind of effect
(issues.feedback.effects), all in one transaction.

Each event is stored and applied exactly as issues.feedback.events and the
rules do one at a time: same id, same classification, same delivery, same
effects, so replays and arrival order change nothing.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from issues.feedback.events import (
    PAYLOAD_MAX_CHARS,
    TRACKING_TYPES,
    event_classify,
    event_key,
    payload_plain,
    tracking_list_ids,
)
from issues.models import Delivery, DeliveryEvent, Issue, SentMessage

logger = logging.getLogger(__name__)


@dataclass
class Incoming:
    """One normalised event on its way in."""

    provider: str
    event_type: str
    key: str
    recipient: str
    message_id: str
    reject_reason: str
    description: str
    occurred_at: datetime | None
    payload: dict | list
    metadata: dict
    delivery: Delivery | None = None
    pk: int | None = None


@dataclass
class Outcome:
    stored: list[Incoming] = field(default_factory=list)
    applied: list[int] = field(default_factory=list)
    deferred: list[int] = field(default_factory=list)


def incoming_from(*, provider: str, event) -> Incoming:
    """Return the event as it will be stored (classified, keyed, trimmed to the columns)."""
    payload = payload_plain(event.esp_event)
    recipient = (event.recipient or "")[:254]
    event_type = event_classify(provider=provider, event_type=event.event_type or "unknown", payload=payload)
    key = event_key(event_id=event.event_id, payload=payload, recipient=recipient)
    stored_payload = json.loads(json.dumps(payload, default=str))
    if len(json.dumps(stored_payload)) > PAYLOAD_MAX_CHARS:
        stored_payload = {"truncated": True}
    description = " ".join(part for part in (event.description, event.mta_response) if part)
    return Incoming(
        provider=provider[:40],
        event_type=event_type[:40],
        key=key,
        recipient=recipient,
        message_id=(event.message_id or "")[:255],
        reject_reason=(event.reject_reason or "")[:100],
        description=description[:2000],
        occurred_at=event.timestamp,
        payload=stored_payload,
        metadata=event.metadata if isinstance(event.metadata, dict) else {},
    )


def _id_variants(message_id: str) -> set[str]:
    bare = message_id.strip().strip("<>")
    return {message_id, bare, f"<{bare}>"} if bare else set()


def _meta_int(metadata: dict, name: str) -> int | None:
    value = str(metadata.get(name, ""))
    return int(value) if value.isdigit() and len(value) < 19 else None


def deliveries_find(items: list[Incoming]) -> None:
    """Set each event's delivery, as events.delivery_find would, in a few queries for all of them.

    By the provider's message id (through SentMessage's id ranges) with the
    recipient, else by the ids our engine put in the metadata. The ledger
    rows are read through the primary key: the metadata's delivery id, a
    one-row range, or (when neither fits) the range filtered by address.
    """
    variants = {id(item): _id_variants(item.message_id) for item in items}
    wanted = set().union(*variants.values()) if variants else set()
    spans: dict[str, list[tuple[int, int, int]]] = {}
    if wanted:
        for mid, issue_id, low, high in SentMessage.objects.filter(provider_message_id__in=wanted).values_list(
            "provider_message_id", "issue_id", "first_delivery_id", "last_delivery_id"
        ):
            spans.setdefault(mid, []).append((issue_id, low, high))
    item_spans = {id(item): [s for v in variants[id(item)] for s in spans.get(v, [])] for item in items}

    pks: set[int] = set()
    for item in items:
        delivery_id = _meta_int(item.metadata, "delivery_id")
        if delivery_id:
            pks.add(delivery_id)
        pks.update(low for _, low, high in item_spans[id(item)] if low == high)
    rows = {row.pk: row for row in Delivery.objects.filter(pk__in=pks)} if pks else {}

    def in_spans(row: Delivery, item: Incoming) -> bool:
        return row.provider_message_id in variants[id(item)] and any(
            low <= row.pk <= high and row.issue_id == issue_id for issue_id, low, high in item_spans[id(item)]
        )

    unresolved: list[Incoming] = []
    for item in items:
        if not item_spans[id(item)]:
            continue
        recipient = item.recipient.lower()
        candidates = [r for r in rows.values() if in_spans(r, item)] if item_spans[id(item)] else []
        by_address = [r for r in candidates if recipient and r.email.lower() == recipient]
        if by_address:
            item.delivery = by_address[0]
            continue
        singles = [r for r in candidates if any(low == high == r.pk for _, low, high in item_spans[id(item)])]
        if len(singles) == 1 and not any(low != high for _, low, high in item_spans[id(item)]):
            item.delivery = singles[0]
            continue
        if recipient and any(low != high for _, low, high in item_spans[id(item)]):
            unresolved.append(item)

    if unresolved:
        # A batch's shared id without our delivery id in the metadata: the
        # reader is found by address within the batch's id range.
        within = Q()
        for item in unresolved:
            for _issue_id, low, high in item_spans[id(item)]:
                if low != high:
                    within |= Q(id__range=(low, high), email__iexact=item.recipient)
        found = list(Delivery.objects.filter(within)) if within else []
        for item in unresolved:
            recipient = item.recipient.lower()
            for row in found:
                if row.email.lower() == recipient and in_spans(row, item):
                    item.delivery = row
                    break

    # Lacking a message id match: the metadata.
    pairs: list[tuple[Incoming, int, int]] = []
    for item in items:
        if item.delivery is not None:
            continue
        delivery_id = _meta_int(item.metadata, "delivery_id")
        if delivery_id and delivery_id in rows:
            item.delivery = rows[delivery_id]
            continue
        issue_id, subscriber_id = _meta_int(item.metadata, "issue_id"), _meta_int(item.metadata, "subscriber_id")
        if issue_id and subscriber_id:
            pairs.append((item, issue_id, subscriber_id))
    if pairs:
        condition = Q()
        for _, issue_id, subscriber_id in pairs:
            condition |= Q(issue_id=issue_id, subscriber_id=subscriber_id)
        by_pair = {(r.issue_id, r.subscriber_id): r for r in Delivery.objects.filter(condition)}
        for item, issue_id, subscriber_id in pairs:
            item.delivery = by_pair.get((issue_id, subscriber_id))


def _tracked_filter(items: list[Incoming]) -> list[Incoming]:
    """Drop opens and clicks for lists that do not track them (read once for the request)."""
    if not any(item.event_type in TRACKING_TYPES for item in items):
        return items
    tracking = tracking_list_ids()
    unlisted = {i.delivery.issue_id for i in items if i.delivery and not i.delivery.mailing_list_id}
    issues_tracking = set()
    if unlisted and tracking:
        issues_tracking = set(
            Issue.lists.through.objects.filter(issue_id__in=unlisted, mailinglist_id__in=tracking).values_list(
                "issue_id", flat=True
            )
        )
    kept = []
    for item in items:
        if item.event_type in TRACKING_TYPES:
            delivery = item.delivery
            if delivery is None:
                continue
            if delivery.mailing_list_id and delivery.mailing_list_id not in tracking:
                continue
            if not delivery.mailing_list_id and delivery.issue_id not in issues_tracking:
                continue
        kept.append(item)
    return kept


_COLUMNS = (
    "provider",
    "event_id",
    "event_type",
    "delivery_id",
    "recipient",
    "message_id",
    "reject_reason",
    "description",
    "occurred_at",
    "received_at",
    "applied_at",
    "payload",
)


def events_insert(items: list[Incoming], *, applied_at: datetime | None) -> list[Incoming]:
    """Store the events in one statement; return those that were new (with their ids), in key order."""
    if not items:
        return []
    table = DeliveryEvent._meta.db_table
    now = timezone.now()
    by_key = {}
    for item in sorted(items, key=lambda i: i.key):  # one order, so concurrent inserts never deadlock
        by_key.setdefault(item.key, item)
    placeholders = "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    if connection.vendor == "postgresql":
        placeholders = "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)"
    params: list = []
    for item in by_key.values():
        params += [
            item.provider,
            item.key,
            item.event_type,
            item.delivery.pk if item.delivery else None,
            item.recipient,
            item.message_id,
            item.reject_reason,
            item.description,
            item.occurred_at,
            now,
            applied_at,
            json.dumps(item.payload),
        ]
    sql = (
        f"INSERT INTO {table} ({', '.join(_COLUMNS)}) VALUES {', '.join([placeholders] * len(by_key))} "  # noqa: S608
        "ON CONFLICT (provider, event_id) DO NOTHING RETURNING id, event_id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        returned = cursor.fetchall()
    stored = []
    for pk, key in sorted(returned, key=lambda row: row[1]):
        item = by_key[key]
        item.pk = pk
        stored.append(item)
    return stored


def events_receive(*, provider: str, events: list) -> Outcome:
    """Store a request's tracking events and apply their effects; return what was stored, applied and deferred.

    Effects are applied in the same transaction as the insert, the events
    marked applied as they are inserted, for up to FEEDBACK_INLINE_SECONDS;
    the rest (or everything, if applying fails) are left unapplied for the
    caller to queue to Celery.
    """
    from issues.feedback.effects import effects_apply_grouped

    items = [incoming_from(provider=provider, event=event) for event in events]
    outcome = Outcome()
    if not items:
        return outcome
    deliveries_find(items)
    items = _tracked_filter(items)
    budget = settings.FEEDBACK_INLINE_SECONDS
    if budget > 0:
        deadline = time.monotonic() + budget
        try:
            with transaction.atomic():
                stored = events_insert(items, applied_at=timezone.now())
                leftover = effects_apply_grouped(stored, deadline=deadline)
                if leftover:
                    DeliveryEvent.objects.filter(pk__in=leftover).update(applied_at=None)
            outcome.stored = stored
            outcome.deferred = list(leftover)
            outcome.applied = [i.pk for i in stored if i.pk not in set(leftover)]
            return outcome
        except Exception:  # a deadlock, a rule's bug: the events are still stored, for a worker to apply
            logger.exception("%s: applying %d events failed; storing them for a worker", provider, len(items))
    with transaction.atomic():
        stored = events_insert(items, applied_at=None)
    outcome.stored = stored
    outcome.deferred = [item.pk for item in stored]
    return outcome

"""A webhook request's events taken in together: classified, found, stored and applied in a few statements.

A SendGrid post carries up to about a thousand events, and a busy send brings
a million; handled one by one, each costs about nine queries. Here the whole
request's events are classified in Python, their deliveries found with one
query (SentMessage's spans and the ledger rows they name), and stored with
one INSERT ... ON CONFLICT DO NOTHING RETURNING, so a replayed event stores
nothing and is applied nowhere. issues.feedback.effects applies them with one
grouped UPDATE per kind of effect; issues.feedback.receive puts the two
together in one transaction (one statement for delivered, opened, clicked).

Each event is stored and applied exactly as issues.feedback.events and the
rules do one at a time: same id, same classification, same delivery, same
effects, so replays and arrival order change nothing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import Q
from django.utils import timezone

from issues.feedback.events import (
    PAYLOAD_MAX_CHARS,
    TRACKING_TYPES,
    event_classify,
    event_key,
    payload_plain,
    provider_event_id,
    tracking_list_ids,
)
from issues.models import Delivery, DeliveryEvent, Issue, SentMessage
from subscriptions.models import Subscriber

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
    payload_json: str
    metadata: dict
    delivery: Delivery | None = None
    pk: int | None = None


def _text(value, limit: int) -> str:
    return str(value or "").replace("\x00", "")[:limit]


def incoming_from(*, provider: str, event) -> Incoming:
    """Return the event as it will be stored (classified, keyed, trimmed to the columns)."""
    payload = payload_plain(event.esp_event)
    recipient = _text(event.recipient, 254)
    event_type = event_classify(provider=provider, event_type=event.event_type or "unknown", payload=payload)
    # Mailgun signs an event afresh on each post: its own id, not the signature's token, names it.
    event_id = provider_event_id(provider=provider, event_id=event.event_id, payload=payload)
    key = _text(event_key(event_id=event_id, payload=payload, recipient=recipient), 255)
    # PostgreSQL's text and jsonb refuse NUL: a hostile payload must not make
    # the provider retry its post forever.
    payload_json = json.dumps(payload, default=str).replace("\\u0000", "\\ufffd")
    if len(payload_json) > PAYLOAD_MAX_CHARS:
        payload, payload_json = {"truncated": True}, '{"truncated": true}'
    description = " ".join(part for part in (event.description, event.mta_response) if part)
    return Incoming(
        provider=provider[:40],
        event_type=event_type[:40],
        key=key,
        recipient=recipient,
        message_id=_text(event.message_id, 255),
        reject_reason=_text(event.reject_reason, 100),
        description=_text(description, 2000),
        occurred_at=event.timestamp,
        payload=payload,
        payload_json=payload_json,
        metadata=event.metadata if isinstance(event.metadata, dict) else {},
    )


def _id_variants(message_id: str) -> set[str]:
    bare = message_id.strip().strip("<>")
    return {message_id, bare, f"<{bare}>"} if bare else set()


def _meta_int(metadata: dict, name: str) -> int | None:
    value = str(metadata.get(name, ""))
    return int(value) if value.isdigit() and len(value) < 19 else None


# What matching and the effects read of a ledger row (its long text columns stay on disk).
LEDGER_FIELDS = ("id", "issue_id", "subscriber_id", "mailing_list_id", "email", "provider_message_id")


def _spans_and_rows(wanted: set[str], meta_pks: set[int]) -> tuple[dict[str, list], dict[int, Delivery]]:
    """Return the SentMessage spans of these message ids, and the ledger rows of one-row spans and of meta_pks.

    One round trip on PostgreSQL (a single event per request is the common
    Mailgun case, where round trips are most of the cost); two elsewhere.
    """
    spans: dict[str, list[tuple[int, int, int]]] = {}
    rows: dict[int, Delivery] = {}
    if not wanted and not meta_pks:
        return spans, rows
    if connection.vendor == "postgresql":
        columns = ", ".join(f"d.{name}" for name in LEDGER_FIELDS)
        sql = (
            f"SELECT s.provider_message_id, s.issue_id, s.first_delivery_id, s.last_delivery_id, {columns} "  # noqa: S608
            f"FROM {SentMessage._meta.db_table} s LEFT JOIN {Delivery._meta.db_table} d "
            "ON d.id = s.first_delivery_id AND s.first_delivery_id = s.last_delivery_id "
            "WHERE s.provider_message_id = ANY(%s) "
            f"UNION ALL SELECT NULL, NULL, NULL, NULL, {columns} FROM {Delivery._meta.db_table} d WHERE d.id = ANY(%s)"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [sorted(wanted), sorted(meta_pks)])
            found = cursor.fetchall()
        for message_id, issue_id, low, high, *row in found:
            if message_id is not None:
                spans.setdefault(message_id, []).append((issue_id, low, high))
            if row[0] is not None and row[0] not in rows:
                rows[row[0]] = Delivery.from_db(connection.alias, list(LEDGER_FIELDS), row)
        return spans, rows
    if wanted:
        for message_id, issue_id, low, high in SentMessage.objects.filter(provider_message_id__in=wanted).values_list(
            "provider_message_id", "issue_id", "first_delivery_id", "last_delivery_id"
        ):
            spans.setdefault(message_id, []).append((issue_id, low, high))
    pks = meta_pks | {low for found in spans.values() for _, low, high in found if low == high}
    if pks:
        rows = {row.pk: row for row in Delivery.objects.filter(pk__in=pks).only(*LEDGER_FIELDS)}
    return spans, rows


def _rows_by_address(wanted: set[tuple[int, str]]) -> list[Delivery]:
    """Return the ledger rows of these (issue, address) pairs, found through the reader's current address."""
    if not wanted:
        return []
    if connection.vendor != "postgresql":
        condition = Q()
        for issue_id, address in wanted:
            condition |= Q(issue_id=issue_id, subscriber__email__iexact=address)
        return list(Delivery.objects.filter(condition).only(*LEDGER_FIELDS))
    pairs = sorted(wanted)
    columns = ", ".join(f"d.{name}" for name in LEDGER_FIELDS)
    sql = (
        f"SELECT {columns} FROM unnest(%s::bigint[], %s::text[]) AS v(issue_id, email) "  # noqa: S608
        f"JOIN {Subscriber._meta.db_table} s ON lower(s.email) = v.email "
        f"JOIN {Delivery._meta.db_table} d ON d.issue_id = v.issue_id AND d.subscriber_id = s.id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [[issue for issue, _ in pairs], [address for _, address in pairs]])
        return [Delivery.from_db(connection.alias, list(LEDGER_FIELDS), row) for row in cursor.fetchall()]


def deliveries_find(items: list[Incoming]) -> None:
    """Set each event's delivery, as events.delivery_find would, in a few queries for all of them.

    By the provider's message id (through SentMessage's id ranges) with the
    recipient, else by the ids our engine put in the metadata. The ledger
    rows are read through the primary key: the metadata's delivery id, a
    one-row range, or (when neither fits) the range filtered by address.
    """
    variants = {id(item): _id_variants(item.message_id) for item in items}
    wanted = set().union(*variants.values()) if variants else set()
    meta_pks = {pk for pk in (_meta_int(item.metadata, "delivery_id") for item in items) if pk}
    spans, rows = _spans_and_rows(wanted, meta_pks)
    item_spans = {id(item): [s for v in variants[id(item)] for s in spans.get(v, [])] for item in items}
    rows_by_message_id: dict[str, list[Delivery]] = {}
    for row in rows.values():
        rows_by_message_id.setdefault(row.provider_message_id, []).append(row)

    def in_spans(row: Delivery, item: Incoming) -> bool:
        return row.provider_message_id in variants[id(item)] and any(
            low <= row.pk <= high and row.issue_id == issue_id for issue_id, low, high in item_spans[id(item)]
        )

    unresolved: list[Incoming] = []
    for item in items:
        if not item_spans[id(item)]:
            continue
        recipient = item.recipient.lower()
        candidates = [row for v in variants[id(item)] for row in rows_by_message_id.get(v, ()) if in_spans(row, item)]
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
        # reader is found by address, through the subscriber's address and
        # the (issue, subscriber) index; failing that (the address changed
        # since), within the batch's id range.
        found = _rows_by_address(
            {(issue_id, item.recipient.lower()) for item in unresolved for issue_id, low, high in item_spans[id(item)]}
        )
        still = []
        for item in unresolved:
            recipient = item.recipient.lower()
            matches = [row for row in found if row.email.lower() == recipient and in_spans(row, item)]
            if matches:
                item.delivery = matches[0]
            else:
                still.append(item)
        within = Q()
        for item in still:
            for _issue_id, low, high in item_spans[id(item)]:
                if low != high:
                    within |= Q(id__range=(low, high), email__iexact=item.recipient)
        found = list(Delivery.objects.filter(within).only(*LEDGER_FIELDS)) if within else []
        for item in still:
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
        by_pair = {(r.issue_id, r.subscriber_id): r for r in Delivery.objects.filter(condition).only(*LEDGER_FIELDS)}
        for item, issue_id, subscriber_id in pairs:
            item.delivery = by_pair.get((issue_id, subscriber_id))


def tracked_filter(items: list[Incoming]) -> list[Incoming]:
    """Return the events without opens and clicks for lists that do not track them (read once for the request)."""
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


EVENT_COLUMNS = (  # DeliveryEvent's columns as the bulk inserts write them
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


def _rows(items: list[Incoming], now: datetime, applied_at: datetime | None) -> tuple[dict[str, Incoming], list]:
    by_key: dict[str, Incoming] = {}
    for item in sorted(items, key=lambda i: i.key):  # one order, so concurrent inserts never deadlock
        by_key.setdefault(item.key, item)
    rows = [
        (
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
            item.payload_json,
        )
        for item in by_key.values()
    ]
    return by_key, rows


# The events as one JSON document (PostgreSQL): one short statement to plan
# and one parameter to send however many events there are.
_UNNEST = (
    "SELECT provider, event_id, event_type, delivery_id, recipient, message_id, reject_reason, description, "
    "occurred_at, %s::timestamptz AS received_at, %s::timestamptz AS applied_at, payload "
    "FROM json_to_recordset(%s::json) AS v(provider text, event_id text, event_type text, delivery_id bigint, "
    "recipient text, message_id text, reject_reason text, description text, occurred_at timestamptz, "
    "payload jsonb) ORDER BY event_id"
)
_CONFLICT = "ON CONFLICT (provider, event_id) DO NOTHING RETURNING id, event_id"


def _unnest_params(rows: list, now: datetime, applied_at: datetime | None) -> list:
    names = ("provider", "event_id", "event_type", "delivery_id", "recipient", "message_id", "reject_reason")
    documents = []
    for row in rows:
        fields = dict(zip(names, row[:7], strict=True))
        fields["description"] = row[7]
        fields["occurred_at"] = row[8].isoformat() if row[8] else None
        # The payload is already JSON: spliced in, not encoded twice.
        documents.append(json.dumps(fields)[:-1] + ', "payload": ' + row[11] + "}")
    return [now, applied_at, "[" + ",".join(documents) + "]"]


def _stored(by_key: dict[str, Incoming], returned) -> list[Incoming]:
    stored = []
    for pk, key in sorted(returned, key=lambda row: row[1]):
        item = by_key[key]
        item.pk = pk
        stored.append(item)
    return stored


def events_insert(items: list[Incoming], *, applied_at: datetime | None) -> list[Incoming]:
    """Store the events in one statement; return those that were new (with their ids), in key order."""
    if not items:
        return []
    table = DeliveryEvent._meta.db_table
    now = timezone.now()
    by_key, rows = _rows(items, now, applied_at)
    if connection.vendor == "postgresql":
        sql = f"INSERT INTO {table} ({', '.join(EVENT_COLUMNS)}) {_UNNEST} {_CONFLICT}"
        params = _unnest_params(rows, now, applied_at)
    else:
        placeholders = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(rows))
        sql = f"INSERT INTO {table} ({', '.join(EVENT_COLUMNS)}) VALUES {placeholders} {_CONFLICT}"  # noqa: S608
        params = [value for row in rows for value in row]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return _stored(by_key, cursor.fetchall())


# Kinds whose effects are only the ledger row's times: stored and applied in
# one statement on PostgreSQL, no transaction to open or commit.
_TIMES_ONLY = {"delivered", "opened", "clicked"}


def times_only(items: list[Incoming]) -> bool:
    from issues.feedback.rules import RULES

    return connection.vendor == "postgresql" and all(
        item.event_type in _TIMES_ONLY or item.event_type not in RULES for item in items
    )


def events_insert_applied(items: list[Incoming]) -> list[Incoming]:
    """Store the events and set their ledger rows' times in one statement (PostgreSQL; see _TIMES_ONLY).

    The same conditions as the rules for delivered, opened and clicked: a
    late "delivered" never undoes a bounce, a first time is never replaced.
    Only events new to the table (not replays) count.
    """
    table, ledger = DeliveryEvent._meta.db_table, Delivery._meta.db_table
    now = timezone.now()
    by_key, rows = _rows(items, now, now)
    sql = f"""
        WITH ins AS (
            INSERT INTO {table} ({", ".join(EVENT_COLUMNS)}) {_UNNEST}
            ON CONFLICT (provider, event_id) DO NOTHING
            RETURNING id, event_id, event_type, delivery_id, COALESCE(occurred_at, received_at) AS t
        ), eff AS (
            SELECT delivery_id AS id,
                   min(t) FILTER (WHERE event_type = 'delivered') AS dt,
                   min(t) FILTER (WHERE event_type IN ('opened', 'clicked')) AS ot,
                   min(t) FILTER (WHERE event_type = 'clicked') AS ct
              FROM ins WHERE delivery_id IS NOT NULL GROUP BY delivery_id
        ), upd AS (
            UPDATE {ledger} AS d SET
                status = CASE WHEN eff.dt IS NOT NULL AND d.status = 'sent' THEN 'delivered' ELSE d.status END,
                delivered_at = CASE WHEN eff.dt IS NOT NULL AND d.status <> 'bounced'
                                    THEN COALESCE(d.delivered_at, eff.dt) ELSE d.delivered_at END,
                opened_at = COALESCE(d.opened_at, eff.ot),
                clicked_at = COALESCE(d.clicked_at, eff.ct)
              FROM eff
             WHERE d.id = eff.id AND (
                   (eff.dt IS NOT NULL AND (d.status = 'sent' OR (d.delivered_at IS NULL AND d.status <> 'bounced')))
                OR (eff.ot IS NOT NULL AND d.opened_at IS NULL)
                OR (eff.ct IS NOT NULL AND d.clicked_at IS NULL))
            RETURNING d.id
        )
        SELECT id, event_id FROM ins
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, _unnest_params(rows, now, now))
        return _stored(by_key, cursor.fetchall())

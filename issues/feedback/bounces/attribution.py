"""Which delivery each failure in a group of returned mails is about, found for the whole group at once.

The VERP token first: it names our copy even when the address that failed
is one the reader forwards to. In a report naming several recipients the
token is one reader's, so there it must match the address. Then the
Message-ID of the mail we sent, as the report quotes it (through
SentMessage, as for a provider's events, else the issue and reader our own
Message-IDs carry); then the address (the reader's latest copy sent). Each
step is one or two queries for the group, asked only about what the steps
before it left.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db.models import Max, Q
from django.db.models.functions import Lower

from issues.delivery.verp import verp_delivery_id
from issues.feedback.intake import LEDGER_FIELDS, Incoming, deliveries_find
from issues.models import Delivery
from subscriptions.models import Subscriber

# Message-IDs our engine sets: dwv.{issue_id}.{subscriber_id}.{random}@{domain}
_OUR_MESSAGE_ID = re.compile(r"dwv\.(\d+)\.(\d+)\.[^@<>\s]+@[^<>\s]+")
_RETURN_PATH = re.compile(r"^(?:Return-Path|X-Envelope-From|Sender):.*$", re.IGNORECASE | re.MULTILINE)


@dataclass
class Claim:
    """One failure to attribute: its event on the way in, and what the mail's envelope says."""

    item: Incoming  # message_id: the quoted Message-ID of our mail; recipient: the address that failed
    verp_id: int | None  # the delivery the mail's VERP token names, if genuine
    shared: bool  # the report names several recipients
    found_by: str = ""  # "verp", "message_id", "address" or ""


def verp_id_of(*, recipients: list[str], returned_headers: str) -> int | None:
    """Return the delivery a returned mail's VERP token names: the address it came to, else our quoted Return-Path."""
    found = verp_delivery_id(" ".join(recipients))
    if found is None and returned_headers:
        found = verp_delivery_id(" ".join(_RETURN_PATH.findall(returned_headers)))
    return found


def _by_verp(claims: list[Claim]) -> None:
    rows = Delivery.objects.only(*LEDGER_FIELDS).in_bulk({c.verp_id for c in claims if c.verp_id is not None})
    for claim in claims:
        row = rows.get(claim.verp_id)
        if row is not None and (not claim.shared or row.email.lower() == claim.item.recipient):
            claim.item.delivery, claim.found_by = row, "verp"


def _by_message_id(claims: list[Claim]) -> None:
    deliveries_find([claim.item for claim in claims])
    pairs: dict[int, tuple[int, int]] = {}
    for claim in claims:
        match = _OUR_MESSAGE_ID.search(claim.item.message_id) if claim.item.delivery is None else None
        if match:
            pairs[id(claim)] = (int(match.group(1)), int(match.group(2)))
    if pairs:
        condition = Q()
        for issue_id, subscriber_id in set(pairs.values()):
            condition |= Q(issue_id=issue_id, subscriber_id=subscriber_id)
        rows = Delivery.objects.filter(condition).only(*LEDGER_FIELDS).order_by("id")
        by_pair: dict[tuple[int, int], Delivery] = {}
        for row in rows:
            by_pair.setdefault((row.issue_id, row.subscriber_id), row)
        for claim in claims:
            if id(claim) in pairs:
                claim.item.delivery = by_pair.get(pairs[id(claim)])
    for claim in claims:
        if claim.item.delivery is not None:
            claim.found_by = "message_id"


def _by_address(claims: list[Claim]) -> None:
    addresses = {claim.item.recipient for claim in claims if claim.item.recipient}
    if not addresses:
        return
    readers = Subscriber.objects.annotate(address=Lower("email")).filter(address__in=sorted(addresses))
    reader_of = dict(readers.values_list("address", "pk"))
    if not reader_of:
        return
    latest = (
        Delivery.objects.filter(subscriber_id__in=reader_of.values(), sent_at__isnull=False)
        .values("subscriber_id")
        .annotate(last=Max("id"))
        .values_list("last", flat=True)
    )
    rows = {row.subscriber_id: row for row in Delivery.objects.only(*LEDGER_FIELDS).filter(pk__in=latest)}
    for claim in claims:
        row = rows.get(reader_of.get(claim.item.recipient))
        if row is not None:
            claim.item.delivery, claim.found_by = row, "address"


def deliveries_attribute(claims: list[Claim]) -> None:
    """Set each claim's delivery (on its item) and how it was found; unmatched ones keep None and ""."""
    for step in (_by_verp, _by_message_id, _by_address):
        pending = [claim for claim in claims if claim.item.delivery is None]
        if step is _by_message_id:
            pending = [claim for claim in pending if claim.item.message_id]
        if pending:
            step(pending)

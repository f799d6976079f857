"""One way in for every mail that comes back on the SMTP path, however it arrives.

A mailbox poll, the MTA's pipe (`manage.py bounce_receive`) and the HTTP
endpoint all hand the raw mail to bounce_receive(). It is read (parsing.py),
each failure it reports is attributed to a delivery (the VERP token first,
then the Message-ID of the mail we sent, then the address) and stored as a
DeliveryEvent of provider "smtp", and the event goes through the same
rules as the providers' webhook events (rules.py). An event's id is the
report's Message-ID with the recipient, so the same report read twice
stores nothing the second time. Mail that cannot be read is kept as an
UnparsedBounce for an admin; nothing is dropped.
"""

from __future__ import annotations

import email.message
import hashlib
import logging
import re
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from issues.delivery.verp import verp_delivery_id
from issues.feedback.bounces import parsing
from issues.feedback.bounces.mailto import mailto_unsubscribe, message_recipients
from issues.feedback.events import delivery_find
from issues.feedback.smtp_events import smtp_event_record
from issues.models import Delivery, UnparsedBounce
from subscriptions.models import Subscriber

logger = logging.getLogger(__name__)

SOURCES = ("imap", "pop3", "pipe", "http")
# Message-IDs our engine sets: dwv.{issue_id}.{subscriber_id}.{random}@{domain}
_OUR_MESSAGE_ID = re.compile(r"dwv\.(\d+)\.(\d+)\.[^@<>\s]+@[^<>\s]+")
_VERP_IN_RAW = re.compile(rb"\+[0-9a-z]{1,13}-[a-z2-7]{13}@", re.IGNORECASE)
_RETURN_PATH = re.compile(r"^(?:Return-Path|X-Envelope-From|Sender):.*$", re.IGNORECASE | re.MULTILINE)


@dataclass
class IntakeResult:
    """What became of one returned mail."""

    form: str  # parsing's DSN, ARF, HEURISTIC, AUTO_REPLY, UNPARSED, or "unsubscribe"
    recorded: int = 0  # new events stored
    replayed: int = 0  # events already stored (the same report again)
    unattributed: int = 0  # failures no delivery could be found for (recorded all the same)


def _delivery_by_message_id(message_id: str, recipient: str) -> Delivery | None:
    if not message_id:
        return None
    found = delivery_find(message_id=message_id, metadata={}, recipient=recipient)
    if found is not None:
        return found
    match = _OUR_MESSAGE_ID.search(message_id)
    if match:
        return Delivery.objects.filter(issue_id=int(match.group(1)), subscriber_id=int(match.group(2))).first()
    return None


def _delivery_by_address(address: str) -> Delivery | None:
    if not address:
        return None
    subscriber_ids = Subscriber.objects.filter(email__iexact=address).values_list("pk", flat=True)[:1]
    return (
        Delivery.objects.filter(subscriber_id__in=list(subscriber_ids), sent_at__isnull=False).order_by("-id").first()
    )


def delivery_attribute(
    *,
    message: email.message.Message,
    report: parsing.Report,
    failure: parsing.Failure,
    recipients: list[str],
    known: dict[int, Delivery] | None = None,
) -> tuple[Delivery | None, str]:
    """Return the delivery a failure is about and how it was found: "verp", "message_id", "address" or "".

    The VERP token first: it names our copy even when the address that
    failed is one the reader forwards to. In a report naming several
    recipients the token is one reader's, so there it must match the address.
    """
    delivery_id = verp_delivery_id(" ".join(recipients))
    if delivery_id is None and report.returned_headers:
        delivery_id = verp_delivery_id(" ".join(_RETURN_PATH.findall(report.returned_headers)))
    if delivery_id is not None:
        found = (known or {}).get(delivery_id) or Delivery.objects.filter(pk=delivery_id).first()
        if found is not None and (len(report.failures) == 1 or found.email.lower() == failure.recipient):
            return found, "verp"
    found = _delivery_by_message_id(report.original_message_id, failure.recipient)
    if found is not None:
        return found, "message_id"
    found = _delivery_by_address(failure.recipient)
    return (found, "address") if found is not None else (None, "")


def _occurred_at(message: email.message.Message):
    try:
        when = parsedate_to_datetime(str(message.get("Date", "")))
    except (TypeError, ValueError, IndexError):
        return timezone.now()
    if when is None or timezone.is_naive(when):
        return timezone.now()
    return min(when, timezone.now())


def _unparsed_keep(*, raw: bytes, message: email.message.Message, source: str, reason: str) -> None:
    digest = hashlib.sha256(raw).hexdigest()
    keep = raw[: settings.BOUNCE_MESSAGE_MAX_BYTES]
    try:
        with transaction.atomic():
            UnparsedBounce.objects.create(
                source=source[:16],
                digest=digest,
                sender=parsing._text(message.get("From", ""))[:300],
                subject=parsing._text(message.get("Subject", ""))[:300],
                message_id=parsing._text(message.get("Message-ID", ""))[:255],
                size=len(raw),
                raw=keep,
                reason=reason[:300],
            )
    except IntegrityError:
        pass  # the same mail again


def _report_key(message: email.message.Message, raw: bytes) -> str:
    message_id = parsing._text(message.get("Message-ID", ""))
    return message_id[:180] if message_id else "sha256:" + hashlib.sha256(raw).hexdigest()


def bounce_receive(
    *, raw: bytes, source: str, envelope_recipient: str = "", known: dict[int, Delivery] | None = None
) -> IntakeResult:
    """Read one returned mail, record what it reports once, and apply the feedback rules to it.

    `known`: deliveries already loaded by id, which attribution by VERP token uses before asking the database.
    """
    message = parsing.message_from_bytes(raw)
    recipients = message_recipients(message, envelope_recipient=envelope_recipient)
    report = parsing.report_parse(message)
    if report.form == parsing.UNPARSED:
        unsubscribed = mailto_unsubscribe(message=message, recipients=recipients)
        if unsubscribed is not None:
            return IntakeResult("unsubscribe", recorded=int(unsubscribed))
    if report.form == parsing.AUTO_REPLY:
        return IntakeResult(report.form)
    if report.form == parsing.UNPARSED or not report.failures:
        if report.form == parsing.UNPARSED:
            _unparsed_keep(raw=raw, message=message, source=source, reason=report.reason)
        return IntakeResult(report.form)

    result = IntakeResult(report.form)
    key = _report_key(message, raw)
    occurred_at = _occurred_at(message)
    for failure in report.failures:
        delivery, found_by = delivery_attribute(
            message=message, report=report, failure=failure, recipients=recipients, known=known
        )
        # The address we mailed is the one to suppress, whatever address it was forwarded to.
        recipient = (delivery.email if delivery and delivery.email else "") or failure.recipient
        if delivery is None:
            result.unattributed += 1
        payload = {
            "source": source,
            "found_by": found_by,
            "reported_recipient": failure.recipient,
            "format": report.form,
            "status": failure.status,
            "action": failure.action,
            "diagnostic": failure.diagnostic,
            "remote_mta": failure.remote_mta,
            "report_message_id": key,
        }
        event = smtp_event_record(
            event_id=f"{key}|{(failure.recipient or recipient).lower()}",
            event_type=failure.kind,
            delivery=delivery,
            recipient=recipient,
            message_id=report.original_message_id,
            status=failure.status,
            description=f"{failure.status} {failure.diagnostic}".strip(),
            occurred_at=occurred_at,
            payload=payload,
        )
        if event is None:  # this report was read before
            result.replayed += 1
            continue
        result.recorded += 1
        logger.info(
            "Returned mail recorded: event %s %s (%s) for delivery %s via %s",
            event.pk,
            failure.kind,
            failure.status,
            delivery.pk if delivery else None,
            source,
        )
    return result


def bounces_receive(*, raws: list[bytes], source: str) -> list[IntakeResult | None]:
    """Receive several returned mails in one transaction; return each one's result, None where it failed.

    One commit for the lot instead of two per mail (the commits' disk
    flushes were most of a mailbox poll's time). If any mail fails, the lot
    is rolled back and each is received on its own, so one bad mail holds
    back no other.
    """
    # The deliveries the mails' VERP tokens name, in one query (a token is
    # only believed once its signature checks out, so junk costs nothing).
    found = {match.group(0).decode() for raw in raws for match in _VERP_IN_RAW.finditer(raw[:20_000])}
    ids = {verp_delivery_id(token) for token in found}
    known = Delivery.objects.in_bulk([i for i in ids if i is not None])
    try:
        with transaction.atomic():
            return [bounce_receive(raw=raw, source=source, known=known) for raw in raws]
    except Exception:
        logger.warning("A returned mail failed in a batch of %d; receiving them one by one", len(raws), exc_info=True)
    results: list[IntakeResult | None] = []
    for raw in raws:
        try:
            results.append(bounce_receive(raw=raw, source=source))
        except Exception:
            logger.exception("Returned mail not recorded (%s); left for the next try", source)
            results.append(None)
    return results

"""One way in for every mail that comes back on the SMTP path, however it arrives.

A mailbox poll hands over a group of raw mails, the MTA's pipe
(`manage.py bounce_receive`) and the HTTP endpoint one; each group is taken
in together, in one transaction. Every mail is read (parsing.py); the
failures they report are attributed to deliveries for the whole group at
once (attribution.py: the VERP token first, then the Message-ID of the mail
we sent, then the address), stored as DeliveryEvents of provider "smtp" with
one INSERT ... ON CONFLICT DO NOTHING, and the new ones go through the
webhooks' rules applied set-wise (effects.py: one suppression insert, one
ledger update, one count of the soft-bounce runs). An event's id is the
report's Message-ID with the recipient, so the same report read twice
stores nothing, and applies nothing, the second time.

Mail to a list's own addresses (unsubscribe, and the +subscribe, +join,
+leave and +help commands) is acted on as when it comes through a
provider (mailto.py). Auto-replies are ignored. Mail that cannot be read
is kept as an UnparsedBounce for an admin; nothing is dropped.
"""

from __future__ import annotations

import email.message
import hashlib
import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from issues.feedback.bounces import parsing
from issues.feedback.bounces.attribution import Claim, deliveries_attribute, verp_id_of
from issues.feedback.bounces.mailto import list_mail_receive, message_recipients, recipient_fields
from issues.feedback.effects import effects_apply_grouped
from issues.feedback.intake import Incoming, events_insert
from issues.models import UnparsedBounce

logger = logging.getLogger(__name__)

SOURCES = ("imap", "pop3", "pipe", "http")
PROVIDER = "smtp"


@dataclass
class IntakeResult:
    """What became of one returned mail."""

    # parsing's DSN, ARF, HEURISTIC, AUTO_REPLY, UNPARSED; "unsubscribe" or "command" for mail to a list's address
    form: str
    recorded: int = 0  # new events stored
    replayed: int = 0  # events already stored (the same report again)
    unattributed: int = 0  # failures no delivery could be found for (recorded all the same)


@dataclass
class _Mail:
    """One mail of a group on its way in."""

    raw: bytes
    message: email.message.Message
    recipients: list[str]  # the recipient fields as they stand
    report: parsing.Report
    result: IntakeResult
    claims: list[Claim] = field(default_factory=list)


def _clean(value: str, limit: int) -> str:
    # PostgreSQL's text refuses NUL: a hostile report must not wedge the mailbox.
    return value.replace("\x00", "")[:limit]


def _occurred_at(message: email.message.Message):
    try:
        when = parsedate_to_datetime(str(message.get("Date", "")))
    except (TypeError, ValueError, IndexError):
        return timezone.now()
    if when is None or timezone.is_naive(when):
        return timezone.now()
    return min(when, timezone.now())


def _report_key(message: email.message.Message, raw: bytes) -> str:
    message_id = parsing._text(message.get("Message-ID", ""))
    return message_id[:180] if message_id else "sha256:" + hashlib.sha256(raw).hexdigest()


def _unparsed(mail: _Mail, source: str) -> UnparsedBounce:
    message = mail.message
    return UnparsedBounce(
        source=source[:16],
        digest=hashlib.sha256(mail.raw).hexdigest(),
        sender=_clean(parsing._text(message.get("From", "")), 300),
        subject=_clean(parsing._text(message.get("Subject", "")), 300),
        message_id=_clean(parsing._text(message.get("Message-ID", "")), 255),
        size=len(mail.raw),
        raw=mail.raw[: settings.BOUNCE_MESSAGE_MAX_BYTES],
        reason=mail.report.reason[:300],
    )


def _claims(mail: _Mail, source: str) -> list[Claim]:
    """Return an unattributed claim for each failure the mail reports."""
    report = mail.report
    key = _report_key(mail.message, mail.raw)
    occurred_at = _occurred_at(mail.message)
    verp_id = verp_id_of(recipients=mail.recipients, returned_headers=report.returned_headers)
    claims = []
    for failure in report.failures:
        payload = {
            "source": source,
            "found_by": "",
            "reported_recipient": failure.recipient,
            "format": report.form,
            "status": failure.status,
            "action": failure.action,
            "diagnostic": failure.diagnostic,
            "remote_mta": failure.remote_mta,
            "report_message_id": key,
        }
        item = Incoming(
            provider=PROVIDER,
            event_type=failure.kind,
            key=key,  # completed once the delivery is known
            recipient=failure.recipient,
            message_id=_clean(report.original_message_id, 255),
            reject_reason=_clean(failure.status, 100),
            description=_clean(f"{failure.status} {failure.diagnostic}".strip(), 2000),
            occurred_at=occurred_at,
            payload=payload,
            payload_json="",
            metadata={},
        )
        claims.append(Claim(item=item, verp_id=verp_id, shared=len(report.failures) > 1))
    return claims


def _claim_complete(claim: Claim) -> None:
    """Give the event its final address, id and payload now that its delivery is known (or not)."""
    item, delivery = claim.item, claim.item.delivery
    reported = item.recipient
    # The address we mailed is the one to suppress, whatever address it was forwarded to.
    item.recipient = _clean((delivery.email if delivery and delivery.email else "") or reported, 254)
    item.key = _clean(f"{item.key}|{(reported or item.recipient).lower()}", 255)
    item.payload["found_by"] = claim.found_by
    item.payload_json = json.dumps(item.payload).replace("\\u0000", "\\ufffd")


def _mail_read(raw: bytes, *, source: str, envelope_recipient: str) -> _Mail:
    """Read the mail; act on it now if it went to a list's own address; else leave its failures to attribute."""
    message, report = parsing.mail_read(raw)
    # A report needs only the VERP token among the recipient fields; reading out each address costs more.
    recipients = recipient_fields(message, envelope_recipient=envelope_recipient)
    mail = _Mail(raw, message, recipients, report, IntakeResult(report.form))
    if report.form == parsing.UNPARSED:
        recipients = message_recipients(message, envelope_recipient=envelope_recipient)
        acted = list_mail_receive(raw=raw, message=message, recipients=recipients)
        if acted is not None:
            mail.result = IntakeResult(acted[0], recorded=int(acted[1]))
    elif report.form != parsing.AUTO_REPLY:
        mail.claims = _claims(mail, source)
    return mail


def _group_receive(raws: list[bytes], *, source: str, envelope_recipient: str = "") -> list[IntakeResult]:
    """Take the mails in, in the caller's transaction; return what became of each."""
    mails = [_mail_read(raw, source=source, envelope_recipient=envelope_recipient) for raw in raws]
    unparsed = [_unparsed(mail, source) for mail in mails if mail.result.form == parsing.UNPARSED]
    if unparsed:  # the same mail again is kept once
        UnparsedBounce.objects.bulk_create(unparsed, ignore_conflicts=True)
    claims = [claim for mail in mails for claim in mail.claims]
    if claims:
        deliveries_attribute(claims)
        for claim in claims:
            _claim_complete(claim)
        stored = events_insert([claim.item for claim in claims], applied_at=timezone.now())
        effects_apply_grouped(stored, deadline=math.inf)
        if stored:
            kinds = Counter(item.event_type for item in stored)
            logger.info(
                "Returned mail recorded via %s: %d events (%s) from %d mails",
                source,
                len(stored),
                ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())),
                len(mails),
            )
    for mail in mails:
        for claim in mail.claims:
            if claim.item.pk is None:  # this report was read before
                mail.result.replayed += 1
            else:
                mail.result.recorded += 1
            mail.result.unattributed += claim.item.delivery is None
    return [mail.result for mail in mails]


def bounce_receive(*, raw: bytes, source: str, envelope_recipient: str = "") -> IntakeResult:
    """Read one returned mail, record what it reports once, and apply the feedback rules to it.

    Raises if the database fails, having changed nothing.
    """
    with transaction.atomic():
        return _group_receive([raw], source=source, envelope_recipient=envelope_recipient)[0]


def bounces_receive(*, raws: list[bytes], source: str) -> list[IntakeResult | None]:
    """Receive a group of returned mails in one transaction; return each one's result, None where it failed.

    A few statements and one commit for the lot. If the group fails, it is
    rolled back and each mail is received on its own, so one bad mail holds
    back no other; a mail whose result is None changed nothing.
    """
    if not raws:
        return []
    try:
        with transaction.atomic():
            return _group_receive(raws, source=source)
    except Exception:
        logger.warning("A returned mail failed in a group of %d; receiving them one by one", len(raws), exc_info=True)
    results: list[IntakeResult | None] = []
    for raw in raws:
        try:
            results.append(bounce_receive(raw=raw, source=source))
        except Exception:
            logger.exception("Returned mail not recorded (%s); left for the next try", source)
            results.append(None)
    return results

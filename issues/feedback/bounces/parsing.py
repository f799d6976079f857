"""Read a returned mail: a DSN (RFC 3464), a complaint (ARF, RFC 5965), a bounce in some other form, or none.

Tried in that order: the standard reports say exactly which recipient
failed and how (Action, Status); flufl.bounce's detectors (the ones GNU
Mailman uses) recognise the older free-text bounces of Exim, qmail and
others. An auto-reply (RFC 3834 Auto-Submitted, an out-of-office) is not a
bounce. Whatever is none of these is "unparsed", for an admin to look at.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import logging
import re
from dataclasses import dataclass, field
from email.parser import HeaderParser
from email.utils import collapse_rfc2231_value

from flufl.bounce import all_failures

from issues.feedback.bounces.mime_split import entity_split

logger = logging.getLogger(__name__)

DSN = "dsn"
ARF = "arf"
HEURISTIC = "heuristic"
AUTO_REPLY = "auto_reply"
UNPARSED = "unparsed"

# What a failure does, named as the feedback rules name events.
HARD = "bounced"
SOFT = "soft_bounced"
DELAYED = "deferred"
COMPLAINT = "complained"

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_REPLY = re.compile(r"\b([45])\d\d[ -](?:[45]\.\d{1,3}\.\d{1,3}\b)?")
_ADDRESS = re.compile(r"<?([^\s<>;\"']+@[^\s<>;\"']+?)>?\s*$")
_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|out of (the )?office|abwesenheit|absence|vacation)",
    re.IGNORECASE,
)
_PLAIN_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")
_QUOTED_MESSAGE_ID = re.compile(r"^Message-ID:[ \t]*(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)
_BOUNCE_SENDERS = ("mailer-daemon@", "postmaster@")
TEXT_LIMIT = 2000


@dataclass
class Failure:
    """One recipient a report is about, and what happened to it."""

    recipient: str
    kind: str  # HARD, SOFT, DELAYED or COMPLAINT
    status: str = ""  # the enhanced status code, e.g. "5.1.1"
    action: str = ""  # the DSN's Action, or the ARF Feedback-Type
    diagnostic: str = ""
    remote_mta: str = ""


@dataclass
class Report:
    """What a returned mail says."""

    form: str  # DSN, ARF, HEURISTIC, AUTO_REPLY or UNPARSED
    failures: list[Failure] = field(default_factory=list)
    # The headers of the mail we sent, as the report returned them (for
    # the VERP Return-Path and the original Message-ID), and that id.
    returned_headers: str = ""
    original_message_id: str = ""
    reason: str = ""  # why it is UNPARSED


def message_from_bytes(raw: bytes) -> email.message.Message:
    """Return the raw mail parsed leniently (compat32: never raises on a malformed header)."""
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def _text(value) -> str:
    return " ".join(str(value or "").split())[:TEXT_LIMIT]


def _address(value: str) -> str:
    """Return the address of a DSN recipient field ("rfc822; a@b"), or ""."""
    _, _, address = str(value or "").rpartition(";")
    match = _ADDRESS.search(address.strip())
    return match.group(1).strip().lower()[:254] if match else ""


def status_kind(*, status: str, action: str = "", diagnostic: str = "") -> tuple[str, str]:
    """Return (kind, status code) for a DSN recipient: hard, soft or delayed.

    5.x.x is permanent and 4.x.x temporary, except X.2.2 "mailbox full",
    which RFC 3463 itself calls possibly transient: it counts as soft.
    Without a Status, the SMTP reply in the diagnostic decides.
    """
    match = _STATUS.search(status or "") or _STATUS.search(diagnostic or "")
    code = match.group(0) if match else ""
    if not code:
        reply = _SMTP_REPLY.search(diagnostic or "")
        code = f"{reply.group(1)}.0.0" if reply else ""
    action = (action or "").strip().lower()
    if action == "delayed":
        return DELAYED, code or "4.0.0"
    if code.startswith("5.") and not code.startswith("5.2.2"):
        return HARD, code
    if code.startswith(("4.", "5.2.2")):
        return SOFT, code
    return (HARD if action == "failed" else SOFT), code or ("5.0.0" if action == "failed" else "4.0.0")


def _report_parts(message: email.message.Message, report_type: str) -> tuple[list, str]:
    """Return (the machine-readable part's field blocks, the returned headers) of a multipart/report."""
    blocks: list = []
    returned = ""
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/delivery-status" and report_type == "delivery-status":
            payload = part.get_payload()
            if isinstance(payload, list):
                blocks = payload
            else:  # some servers send it as text; parse the blocks ourselves
                text = part.get_payload(decode=True) or b""
                blocks = [
                    HeaderParser().parsestr(chunk + "\n")
                    for chunk in re.split(r"\r?\n\s*\r?\n", text.decode("utf-8", "replace"))
                    if chunk.strip()
                ]
        elif content_type == "message/feedback-report" and report_type == "feedback-report":
            payload = part.get_payload()
            if isinstance(payload, list):
                blocks = payload
            else:
                text = part.get_payload(decode=True) or b""
                blocks = [HeaderParser().parsestr(text.decode("utf-8", "replace"))]
        elif content_type == "text/rfc822-headers" and not returned:
            returned = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
        elif content_type == "message/rfc822" and not returned:
            inner = part.get_payload()
            if isinstance(inner, list) and inner:
                returned = "".join(f"{name}: {value}\n" for name, value in inner[0].items())
    return blocks, returned


def _message_id_in(headers: str) -> str:
    if not headers:
        return ""
    parsed = HeaderParser().parsestr(headers, headersonly=True)
    return _text(parsed.get("Message-ID", ""))[:255]


def _dsn_read(message: email.message.Message) -> Report | None:
    blocks, returned = _report_parts(message, "delivery-status")
    if not blocks:
        return None
    per_message, recipients = blocks[0], blocks[1:]
    if per_message.get("Final-Recipient") or per_message.get("Action"):
        recipients = blocks  # a DSN without per-message fields
    failures = []
    for block in recipients:
        action = _text(block.get("Action", "")).lower()
        if action in ("delivered", "relayed", "expanded"):
            continue  # success notices: nothing to act on
        recipient = _address(block.get("Original-Recipient", "")) or _address(block.get("Final-Recipient", ""))
        if not recipient:
            continue
        diagnostic = _text(block.get("Diagnostic-Code", ""))
        diagnostic = diagnostic.split(";", 1)[1].strip() if ";" in diagnostic[:20] else diagnostic
        kind, status = status_kind(status=_text(block.get("Status", "")), action=action, diagnostic=diagnostic)
        failures.append(
            Failure(
                recipient=recipient,
                kind=kind,
                status=status,
                action=action,
                diagnostic=diagnostic,
                remote_mta=_text(block.get("Remote-MTA", "")).split(";", 1)[-1].strip()[:255],
            )
        )
    return Report(DSN, failures, returned, _message_id_in(returned))


def _arf_read(message: email.message.Message) -> Report | None:
    blocks, returned = _report_parts(message, "feedback-report")
    if not blocks:
        return None
    fields = blocks[0]
    feedback_type = _text(fields.get("Feedback-Type", "")).lower() or "abuse"
    recipient = _address(fields.get("Original-Rcpt-To", ""))
    if not recipient and returned:
        recipient = _address(HeaderParser().parsestr(returned, headersonly=True).get("To", ""))
    if feedback_type == "not-spam":
        return Report(ARF, [], returned, _message_id_in(returned))
    failure = Failure(
        recipient=recipient,
        kind=COMPLAINT,
        action=feedback_type[:40],
        diagnostic=_text(fields.get("User-Agent", "")) or "complaint (ARF)",
        remote_mta=_text(fields.get("Reporting-MTA", "")).split(";", 1)[-1].strip()[:255],
    )
    return Report(ARF, [failure], returned, _message_id_in(returned))


def message_is_auto_reply(message: email.message.Message) -> bool:
    """Return True for an RFC 3834 auto-reply (out of office, vacation) that is not from a mail server."""
    sender = _text(message.get("From", "")).lower()
    if any(name in sender for name in _BOUNCE_SENDERS) or message.get("X-Failed-Recipients"):
        return False
    auto_submitted = _text(message.get("Auto-Submitted", "")).lower()
    if auto_submitted and auto_submitted != "no":
        return True
    if message.get("X-Autoreply") or message.get("X-Autorespond"):
        return True
    if _text(message.get("Precedence", "")).lower() == "auto_reply":
        return True
    return bool(_AUTO_SUBJECT.match(_text(message.get("Subject", ""))))


def _body_text(message: email.message.Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True) or b""
            return payload.decode(part.get_content_charset() or "utf-8", "replace")
    return ""


def _heuristic_read(message: email.message.Message) -> Report | None:
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # a detector tripped over a malformed part: not a bounce we can read
        logger.info("flufl.bounce's detectors could not read a returned mail", exc_info=True)
        return None
    if not (temporary or permanent):
        return None
    body = _body_text(message)
    failures = []
    for addresses, default in ((permanent, "5.0.0"), (temporary, "4.0.0")):
        for raw_address in addresses:
            address = raw_address.decode("utf-8", "replace") if isinstance(raw_address, bytes) else str(raw_address)
            address = address.strip("<> ").lower()
            if len(address) > 254 or not _PLAIN_ADDRESS.match(address):
                continue  # a detector's guess that is no address
            # The line naming the address usually carries the server's words.
            diagnostic = ""
            at = body.lower().find(address)
            if at != -1:
                diagnostic = _text(body[at : at + 400])
            status_match = _STATUS.search(diagnostic)
            status = status_match.group(0) if status_match else default
            kind = HARD if default.startswith("5") else SOFT
            if status.startswith(("4.", "5.2.2")):
                kind = SOFT
            failures.append(Failure(address, kind, status, "failed", diagnostic or "bounce (no DSN)"))
    if not failures:
        return None
    _, returned = _report_parts(message, "")
    # Free-text bounces quote the mail we sent, headers and all, in the body.
    returned = returned or body
    quoted_id = _QUOTED_MESSAGE_ID.search(returned)
    original_message_id = quoted_id.group(1)[:255] if quoted_id else ""
    return Report(HEURISTIC, failures, returned, original_message_id)


def _standard_read(message: email.message.Message) -> Report | None:
    """Return what a standard report (a DSN, an ARF complaint) says, or None if the mail is not one."""
    if message.get_content_type() != "multipart/report":
        return None
    report_type = str(collapse_rfc2231_value(message.get_param("report-type") or "")).lower()
    if report_type == "delivery-status":
        return _dsn_read(message)
    if report_type == "feedback-report":
        return _arf_read(message)
    return None


def report_parse(message: email.message.Message) -> Report:
    """Return what the returned mail reports."""
    report = _standard_read(message)
    if report is not None:
        return report
    if message_is_auto_reply(message):
        return Report(AUTO_REPLY)
    report = _heuristic_read(message)
    if report is not None:
        return report
    return Report(UNPARSED, reason="neither a DSN, a complaint, nor a bounce flufl.bounce recognises")


def mail_read(raw: bytes) -> tuple[email.message.Message, Report]:
    """Return the raw mail parsed, and what it reports.

    A well-formed DSN or complaint is read through mime_split's quick
    reading (a third of the full parse's time); any other mail, or one that
    reading finds no report in, gets the full parse.
    """
    quick = entity_split(raw.decode("ascii", "surrogateescape"))  # as the email package reads bytes
    report = _standard_read(quick) if quick is not None else None
    if report is not None:
        return quick, report
    message = message_from_bytes(raw)
    return message, report_parse(message)

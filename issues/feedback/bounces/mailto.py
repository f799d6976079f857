"""Mail to a list's own addresses, arriving where bounces do (a mailbox, a pipe, the HTTP intake).

On the SMTP path no provider posts readers' mail to the inbound webhook, so
the MTA may well deliver a list's +subscribe or +unsubscribe mail to the
bounce mailbox. The same rules apply as through a provider:
- the command addresses (+subscribe, +join, +leave, +help) are answered by
  the inbox's own handler (issues/comments/commands.py), and mail from
  programs (auto-replies, bounces, other lists) by none;
- the reader's own `LIST+unsubscribe-TOKEN@domain` unsubscribes exactly
  the reader and list in the token, whoever the mail claims to be from
  (subscriptions/mailto.py); the bare `LIST+unsubscribe@domain`
  unsubscribes nobody, and a reader who writes to it gets, at most, the
  link to their preferences.
"""

from __future__ import annotations

import email.message
import logging
from email.utils import getaddresses

from anymail.inbound import AnymailInboundMessage

from issues.comments.commands import command_for, command_mail_receive
from issues.comments.inbound import message_is_automatic
from issues.models import Issue
from subscriptions.mailto import mailto_request_find, preferences_link_answer, subscription_unsubscribe_by_mailto

logger = logging.getLogger(__name__)

RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To", "Cc")


def recipient_fields(message: email.message.Message, *, envelope_recipient: str = "") -> list[str]:
    """Return the envelope recipient and the recipient headers' values as they stand (enough to find a VERP token)."""
    values = [envelope_recipient] + [str(v) for name in RECIPIENT_HEADERS for v in message.get_all(name, [])]
    return [value for value in values if value]


def message_recipients(message: email.message.Message, *, envelope_recipient: str = "") -> list[str]:
    """Return every address the mail was delivered to or addressed to, the envelope's first (case kept: tokens)."""
    fields = recipient_fields(message, envelope_recipient=envelope_recipient)
    addresses = [address.strip() for _, address in getaddresses(fields) if "@" in address]
    return list(dict.fromkeys(addresses))


def _sender(message: email.message.Message) -> str:
    addresses = getaddresses([str(message.get("From", ""))])
    return addresses[0][1] if addresses else ""


def mailto_unsubscribe(*, message: email.message.Message, recipients: list[str]) -> bool | None:
    """Act on mail to an unsubscribe address; return None if it was not sent to one.

    Return True if a subscription changed, False otherwise (the bare
    address, a forged token, a reader already gone): a From header alone
    never unsubscribes anyone.
    """
    request = mailto_request_find(recipients=recipients)
    if request is None:
        return None
    if request.kind == "reader":
        issue_id = request.claim.issue_id
        if issue_id and not Issue.objects.filter(pk=issue_id).exists():
            issue_id = None
        return subscription_unsubscribe_by_mailto(claim=request.claim, issue_id=issue_id)
    if request.kind == "bare":
        preferences_link_answer(sender=_sender(message), mailing_list=request.mailing_list)
    else:
        logger.info("Mail to an unsubscribe address with a token we did not make")
    return False


def mailto_command(*, raw: bytes, recipients: list[str]) -> bool:
    """Act on mail to a list's command address as the inbound webhook does; return False if it went to none."""
    lowered = [address.lower() for address in recipients]
    if command_for(lowered) is None:
        return False
    message = AnymailInboundMessage.parse_raw_mime_bytes(raw)
    # What a provider's inbound post would say of the envelope: "<>" marks a bounce.
    message.envelope_sender = message.get("Return-Path")
    message.envelope_recipient = recipients[0] if recipients else None
    if message_is_automatic(message):
        logger.info("Mail from a program to a list's command address: not answered")
    else:
        command_mail_receive(message=message, recipients=lowered)
    return True


def list_mail_receive(*, raw: bytes, message: email.message.Message, recipients: list[str]) -> tuple[str, bool] | None:
    """Act on mail to one of a list's own addresses; return None if it went to none.

    Otherwise return what it was ("command" or "unsubscribe") and whether a
    subscription changed (a command changes none at once: it is answered).
    """
    if mailto_command(raw=raw, recipients=recipients):
        return "command", False
    unsubscribed = mailto_unsubscribe(message=message, recipients=recipients)
    return None if unsubscribed is None else ("unsubscribe", unsubscribed)

"""Mail to a list's unsubscribe address, arriving where bounces do (a mailbox or a pipe).

The same rules as for mail through a provider (subscriptions/mailto.py):
the reader's own `LIST+unsubscribe-TOKEN@domain` unsubscribes exactly the
reader and list in the token, whoever the mail claims to be from; the bare
`LIST+unsubscribe@domain` unsubscribes nobody, and a reader who writes to
it gets, at most, the link to their preferences.
"""

from __future__ import annotations

import email.message
import logging
from email.utils import getaddresses

from issues.models import Issue
from subscriptions.mailto import mailto_request_find, preferences_link_answer, subscription_unsubscribe_by_mailto

logger = logging.getLogger(__name__)

RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To", "Cc")


def message_recipients(message: email.message.Message, *, envelope_recipient: str = "") -> list[str]:
    """Return every address the mail was delivered to or addressed to, the envelope's first (case kept: tokens)."""
    values = [envelope_recipient] + [str(v) for name in RECIPIENT_HEADERS for v in message.get_all(name, [])]
    addresses = [address.strip() for _, address in getaddresses([v for v in values if v]) if "@" in address]
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

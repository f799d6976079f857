"""Mail to a list's command addresses: +subscribe and +join, +leave, +help.

Read by the same intake as readers' replies. A command mail is never a
comment. Mail from programs (auto-replies, bounces) is dropped before it
gets here; mail from another mailing list (List-Id) gets no answer either.
"""

from __future__ import annotations

import email.utils
import logging
from datetime import UTC, datetime

from django.core.exceptions import ValidationError

from subscriptions.addresses import email_normalize
from subscriptions.by_email import help_mail_send, leave_link_mail_send, subscriber_subscribe_by_email
from subscriptions.links import LIST_COMMANDS, list_command_address
from subscriptions.models import MailingList

logger = logging.getLogger(__name__)


def command_for(recipients: list[str]) -> tuple[MailingList, str] | None:
    """Return (list, command) if one of the recipients is a list's command address."""
    if not any("+" in address for address in recipients):
        return None
    for mailing_list in MailingList.objects.all():
        for command in LIST_COMMANDS:
            if list_command_address(mailing_list, command).lower() in recipients:
                return mailing_list, command
    return None


def _sent_at(message) -> datetime | None:
    """Return the mail's Date, in UTC when it names no zone; None when it has none that parses."""
    try:
        sent = email.utils.parsedate_to_datetime(message.get("Date") or "")
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return sent if sent.tzinfo else sent.replace(tzinfo=UTC)


def command_mail_receive(*, message, recipients: list[str]) -> bool:
    """Act on a mail to a command address; return False if the mail is not one (it may be a comment)."""
    found = command_for(recipients)
    if found is None:
        return False
    mailing_list, command = found
    if message.get("List-Id") or message.get("List-Post"):
        return True  # another list's mail: answering it would mail its every reader
    try:
        sender = email_normalize(message.from_email.addr_spec if message.from_email else "")
    except ValidationError:
        return True
    if command in ("subscribe", "join"):
        message_id = (message.get("Message-ID") or "").strip()[:200]
        subscriber_subscribe_by_email(
            email=sender, lists=[mailing_list], message_id=message_id, sent_at=_sent_at(message)
        )
    elif command == "leave":
        leave_link_mail_send(email=sender, mailing_list=mailing_list)
    else:
        help_mail_send(email=sender, mailing_list=mailing_list)
    logger.info("list %s: mail command %s handled", mailing_list.pk, command)
    return True

"""Readers' mail arriving through the provider's inbound webhook.

A reply to an issue becomes a Comment for the editors; mail to a list's
command addresses is handled in commands.py; mail to its unsubscribe
address unsubscribes the sender; auto-replies and bounces are
dropped. Attachments are never stored (only counted), the text is capped,
and HTML, kept only when there is no text part, is sanitised with nh3.
"""

from __future__ import annotations

import hashlib
import logging
import re

import nh3
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.html import strip_tags

from issues.comments.commands import command_mail_receive
from issues.models import Comment, Issue
from subscriptions.addresses import email_normalize
from subscriptions.links import list_contact_address, unsubscribe_mailto
from subscriptions.models import MailingList, Subscriber, Subscription
from subscriptions.services import subscription_unsubscribe

logger = logging.getLogger(__name__)

TEXT_MAX_CHARS = 100_000
# Message-IDs our engine sets: <dwv.{issue_id}.{subscriber_id}.{random}@{domain}>
ISSUE_MESSAGE_ID = re.compile(r"<dwv\.(\d+)\.(\d+)\.[^@<>\s]+@[^<>\s]+>")
AUTO_PRECEDENCE = {"auto_reply", "bulk", "junk", "list"}
BOUNCE_SENDERS = {"mailer-daemon", "postmaster"}


def message_is_automatic(message) -> bool:
    """Return True for an auto-reply or a bounce: mail no person wrote to us."""
    auto_submitted = (message.get("Auto-Submitted") or "").strip().lower()
    if auto_submitted and auto_submitted != "no":
        return True
    if message.get("X-Autoreply") or message.get("X-Autorespond"):
        return True
    if (message.get("Precedence") or "").strip().lower() in AUTO_PRECEDENCE:
        return True
    if message.get_content_type() == "multipart/report":
        return True
    sender = message.envelope_sender
    if sender is not None and sender.strip() in ("", "<>"):
        return True
    address = message.from_email.addr_spec if message.from_email else ""
    return not address or address.split("@", 1)[0].lower() in BOUNCE_SENDERS


def message_recipients(message) -> list[str]:
    """Return every address the mail was sent to, lower-cased."""
    addresses = [a.addr_spec for a in [*message.to, *message.cc]]
    if message.envelope_recipient:
        addresses.append(message.envelope_recipient)
    return [a.strip("<>").lower() for a in addresses if a]


def message_issue_ids(message) -> tuple[int | None, int | None]:
    """Return (issue id, subscriber id) from the issue's Message-ID the mail answers."""
    for header in ("In-Reply-To", "References"):
        for match in ISSUE_MESSAGE_ID.finditer(message.get(header) or ""):
            return int(match.group(1)), int(match.group(2))
    return None, None


def unsubscribe_list_for(recipients: list[str]) -> MailingList | None:
    """Return the list whose unsubscribe address is among the recipients."""
    wanted = [r for r in recipients if "+unsubscribe@" in r]
    if not wanted:
        return None
    for mailing_list in MailingList.objects.all():
        if unsubscribe_mailto(mailing_list).lower() in wanted:
            return mailing_list
    return None


def _list_written_to(recipients: list[str], issue: Issue | None) -> MailingList | None:
    """Return the list the mail was written to: the issue's it answers, or the one whose contact address it reached."""
    if issue is not None:
        return issue.lists.order_by("pk").first()
    for mailing_list in MailingList.objects.all():
        if list_contact_address(mailing_list).lower() in recipients:
            return mailing_list
    return None


def _subscriber_by_email(address: str) -> Subscriber | None:
    try:
        address = email_normalize(address)
    except ValidationError:  # an address we could never have mailed
        return None
    return Subscriber.objects.filter(email__iexact=address).first()


def inbound_key(*, event_id: str | None, message) -> str:
    """Return the id a received mail is stored under: the provider's, else its Message-ID, else a hash."""
    if event_id:
        return event_id[:255]
    message_id = (message.get("Message-ID") or "").strip()
    basis = message_id.encode() if message_id else message.as_bytes()
    return "sha256:" + hashlib.sha256(basis).hexdigest()


def _text_of(message) -> tuple[str, str, bool]:
    """Return (text, sanitised html, truncated) of the mail, preferring its text part."""
    text = message.text or ""
    html = ""
    if not text.strip() and message.html:
        html = nh3.clean(message.html, tags={"p", "br", "a", "em", "strong", "i", "b", "blockquote", "ul", "ol", "li"})
        text = strip_tags(html)
    truncated = len(text) > TEXT_MAX_CHARS or len(html) > TEXT_MAX_CHARS
    if len(html) > TEXT_MAX_CHARS:
        html = ""  # cutting HTML mid-tag would break it; the text suffices
    return text[:TEXT_MAX_CHARS], html, truncated


def inbound_receive(*, provider: str, event) -> Comment | None:
    """Handle one inbound mail; return the new Comment, or None if it is not one."""
    message = event.message
    if message is None or message_is_automatic(message):
        return None
    sender = message.from_email.addr_spec
    recipients = message_recipients(message)
    if command_mail_receive(message=message, recipients=recipients):
        return None

    unsubscribe_from = unsubscribe_list_for(recipients)
    if unsubscribe_from is not None:
        subscriber = _subscriber_by_email(sender)
        if subscriber is not None:
            subscription_unsubscribe(
                subscriber_id=subscriber.pk,
                list_id=unsubscribe_from.pk,
                source=Subscription.UnsubscribeSource.MAILTO,
            )
        return None

    issue_id, subscriber_id = message_issue_ids(message)
    issue = Issue.objects.filter(pk=issue_id).first() if issue_id else None
    mailing_list = _list_written_to(recipients, issue)
    subscriber = None
    if subscriber_id:
        subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
    if subscriber is None or subscriber.email.lower() != sender.lower():
        subscriber = _subscriber_by_email(sender)
    text, html, truncated = _text_of(message)
    attachments = len(message.attachments) + len(message.inline_attachments)
    try:
        with transaction.atomic():
            return Comment.objects.create(
                provider=provider[:40],
                event_id=inbound_key(event_id=event.event_id, message=message),
                issue=issue,
                mailing_list=mailing_list,
                subscriber=subscriber,
                sender_email=sender[:254],
                sender_name=(message.from_email.display_name or "")[:200],
                subject=" ".join((message.subject or "").split())[:300],
                message_id=(message.get("Message-ID") or "").strip()[:255],
                text=text,
                html=html,
                truncated=truncated,
                attachments_dropped=min(attachments, 32767),
                received_at=event.timestamp or timezone.now(),
            )
    except IntegrityError:  # the same mail posted again
        return None

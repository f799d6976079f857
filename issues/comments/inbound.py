"""Readers' mail arriving through the provider's inbound webhook.

A reply to an issue becomes a Comment for the editors; mail to a list's
command addresses is handled in commands.py; mail to a reader's own
unsubscribe address unsubscribes that reader (subscriptions/mailto.py);
auto-replies and bounces are dropped. Attachments are never stored (only counted), the text is capped,
and HTML, kept only when there is no text part, is sanitised with nh3.
"""

from __future__ import annotations

import hashlib
import logging
import re

import nh3
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from issues.comments.commands import command_mail_receive
from issues.comments.html_text import html_text
from issues.models import Comment, Delivery, Issue, SentMessage
from subscriptions.addresses import email_normalize
from subscriptions.links import list_contact_address
from subscriptions.mailto import mailto_request_find, preferences_link_answer, subscription_unsubscribe_by_mailto
from subscriptions.models import MailingList, Subscriber

logger = logging.getLogger(__name__)

TEXT_MAX_CHARS = 100_000
# Message-IDs our engine sets: <dwv.{issue_id}.{subscriber_id}.{random}@{domain}>
ISSUE_MESSAGE_ID = re.compile(r"<dwv\.(\d+)\.(\d+)\.[^@<>\s]+@[^<>\s]+>")
MESSAGE_ID = re.compile(r"<[^<>\s]{1,250}>")
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


def _answered_ids(message) -> list[str]:
    """Return the message ids the mail answers, In-Reply-To first, each once."""
    found: list[str] = []
    for header in ("In-Reply-To", "References"):
        for value in MESSAGE_ID.findall(str(message.get(header) or "")):
            if value not in found:
                found.append(value)
    return found[:50]


def _provider_id_forms(message_id: str) -> set[str]:
    """Return the ways a provider may have recorded this id at send: with or without <>, or its local part.

    Amazon SES replaces the Message-ID with <{its message id}@{region}.amazonses.com>
    and answered the send with the bare id.
    """
    bare = message_id.strip("<>")
    return {message_id, bare, bare.partition("@")[0]} - {""}


def message_issue_ids(message, *, sender: str = "") -> tuple[int | None, int | None]:
    """Return (issue id, subscriber id) of the issue copy the mail answers.

    By our own Message-ID (<dwv.{issue}.{subscriber}...>), else by the
    provider's message id recorded when the copy was sent (SentMessage): a
    provider that rewrites the Message-ID, as Amazon SES does, still links
    the reply to its issue and reader.
    """
    answered = _answered_ids(message)
    for message_id in answered:
        match = ISSUE_MESSAGE_ID.fullmatch(message_id)
        if match:
            return int(match.group(1)), int(match.group(2))
    forms = {form[:255] for message_id in answered for form in _provider_id_forms(message_id)}
    if not forms:
        return None, None
    spans = list(
        SentMessage.objects.filter(provider_message_id__in=forms).values_list(
            "issue_id", "first_delivery_id", "last_delivery_id"
        )[:20]
    )
    within = Q()
    for issue_id, low, high in spans:
        within |= Q(issue_id=issue_id, id__range=(low, high))
    if not within:
        return None, None
    rows = Delivery.objects.filter(within, provider_message_id__in=forms)
    found = rows.filter(email__iexact=sender).first() if sender else None
    if found is None:
        candidates = list(rows[:2])
        found = candidates[0] if len(candidates) == 1 else None
    if found is None:
        # A batch's shared id and an address we did not send to: the issue
        # is known, the reader is found by address later.
        return spans[0][0], None
    return found.issue_id, found.subscriber_id


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
        text = html_text(message.html)
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

    unsubscribe = mailto_request_find(recipients=recipients)
    if unsubscribe is not None:
        # The token, never the From header, says whom to unsubscribe.
        if unsubscribe.kind == "reader":
            issue_id = unsubscribe.claim.issue_id
            if issue_id and not Issue.objects.filter(pk=issue_id).exists():
                issue_id = None
            subscription_unsubscribe_by_mailto(claim=unsubscribe.claim, issue_id=issue_id)
        elif unsubscribe.kind == "bare":
            preferences_link_answer(sender=sender, mailing_list=unsubscribe.mailing_list)
        return None

    issue_id, subscriber_id = message_issue_ids(message, sender=sender)
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
                # anymail's Mailgun event id is the signature's token, new with every
                # signing; the mail's own Message-ID names it across re-signed posts.
                event_id=inbound_key(event_id=None if provider == "mailgun" else event.event_id, message=message),
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

"""Subscribing and leaving by writing to the list: the +subscribe, +join, +leave and +help addresses.

A mail's From header proves nothing about who sent it, so nothing here
acts on it alone: a request to subscribe starts the same double opt-in as
the web form (a confirmation mail to that address), and a request to leave
is answered with the link that leaves, sent to that address. Answers go
out at most once per address and command per interval, never to
suppressed or erased addresses, and never repeat the writer's words.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from dwvlist.celery import task_queue
from dwvlist.emails import email_send, sender_address
from subscriptions.links import list_command_address, list_contact_address, unsubscribe_url
from subscriptions.models import MailingList, Subscriber, Subscription
from subscriptions.ratelimit import command_answer_allowed, confirmation_mail_allowed
from subscriptions.services import _subscriber_get_or_create, subscription_join
from subscriptions.suppressions import suppression_exists

# Answers are mail written by a program: RFC 3834 asks us to say so, which
# keeps other programs from answering them in turn.
_AUTO_REPLIED = {"Auto-Submitted": "auto-replied", "Precedence": "bulk"}


def consent_detail_by_email(*, message_id: str, sent_at: datetime | None) -> str:
    """Return the consent record's words for a request by email: the message that asked, and when."""
    if sent_at is not None and timezone.is_naive(sent_at):
        sent_at = timezone.make_aware(sent_at, UTC)
    when = sent_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if sent_at else "an unknown date"
    return f"asked by email: Message-ID {message_id or '(none)'}, sent {when}"[:300]


def subscriber_subscribe_by_email(
    *, email: str, lists: Sequence[MailingList], message_id: str, sent_at: datetime | None
) -> bool:
    """Start a double opt-in for the address on the lists, as the web form does; return True if a mail was queued.

    The subscription stays pending until the reader confirms, whatever
    the list's double opt-in setting. The consent record names the mail
    that asked. A suppressed or erased address gets nothing, and the
    caller must not say so.
    """
    if suppression_exists(email=email):
        return False
    now = timezone.now()
    detail = consent_detail_by_email(message_id=message_id, sent_at=sent_at)
    with transaction.atomic():
        subscriber = _subscriber_get_or_create(email=email, name="")
        pending = False
        for mailing_list in lists:
            subscription, _ = subscription_join(
                subscriber=subscriber,
                mailing_list=mailing_list,
                detail=detail,
                now=now,
                confirmed=False,
                source=Subscription.ConsentSource.EMAIL,
                confirm_always=True,
            )
            pending = pending or subscription.status == Subscription.Status.PENDING
        if pending and confirmation_mail_allowed(email=subscriber.email):
            subscriber_id = subscriber.pk
            transaction.on_commit(lambda: task_queue("subscriptions.tasks.confirmation_mail", subscriber_id))
            return True
    return False


def _answer_send(name: str, *, to: str, mailing_list: MailingList, context: dict) -> None:
    email_send(
        name,
        to=to,
        from_email=sender_address(mailing_list.from_name, mailing_list.from_email),
        reply_to=list_contact_address(mailing_list),
        headers=_AUTO_REPLIED,
        context={"mailing_list": mailing_list, **context},
    )


def leave_link_mail_send(*, email: str, mailing_list: MailingList) -> bool:
    """Answer a request to leave with the link that leaves, sent to the address; return True if sent.

    Only the address's owner reads the answer, so a forged From leaves no
    one unsubscribed. Suppressed and erased addresses get nothing.
    """
    if suppression_exists(email=email) or not command_answer_allowed(email=email, command="leave"):
        return False
    subscription = (
        Subscription.objects.filter(subscriber__email__iexact=email, mailing_list=mailing_list)
        .exclude(status=Subscription.Status.UNSUBSCRIBED)
        .first()
    )
    link = unsubscribe_url(subscriber_id=subscription.subscriber_id, list_id=mailing_list.pk) if subscription else ""
    _answer_send("list-leave", to=email, mailing_list=mailing_list, context={"unsubscribe_url": link})
    return True


def help_mail_send(*, email: str, mailing_list: MailingList) -> bool:
    """Answer with what the list's addresses do; return True if sent."""
    if suppression_exists(email=email) or not command_answer_allowed(email=email, command="help"):
        return False
    addresses = {command: list_command_address(mailing_list, command) for command in ("subscribe", "leave", "help")}
    context = {
        "addresses": addresses,
        "contact_address": list_contact_address(mailing_list),
        "site_url": settings.SITE_URL,
    }
    _answer_send("list-help", to=email, mailing_list=mailing_list, context=context)
    return True


def subscriber_for_email(email: str) -> Subscriber | None:
    """Return the subscriber with this address, whatever its letter case."""
    return Subscriber.objects.filter(email__iexact=email).first()

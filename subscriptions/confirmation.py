"""Confirming: the mail with the link that confirms a subscription, and following that link."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from dwvlist.celery import task_queue
from dwvlist.emails import email_send, sender_address
from subscriptions.models import MailingList, Subscriber, Subscription
from subscriptions.ratelimit import confirmation_mail_allowed
from subscriptions.services import welcome_queue
from subscriptions.suppressions import suppression_exists
from subscriptions.tokens import (
    confirmation_token_expired,
    confirmation_token_make,
    confirmation_token_matches,
    confirmation_token_read,
)


def _confirmable(*, subscriber: Subscriber, issued_at: int) -> list[Subscription]:
    # Only what was asked for before the mail went out: a list added to the
    # address later (by anyone) is not confirmed by an older link.
    cutoff = datetime.fromtimestamp(issued_at, tz=UTC)
    return list(
        Subscription.objects.filter(subscriber=subscriber, status=Subscription.Status.PENDING, consented_at__lt=cutoff)
        .select_related("mailing_list")
        .order_by("mailing_list__name", "pk")
    )


def _confirmation_state(*, subscriber: Subscriber, pending: Sequence[Subscription]) -> str:
    # Confirming (or a fresh consent record, or a new address) changes
    # this, so a token works once.
    rows = ";".join(f"{s.pk}:{s.consented_at.astimezone(UTC).isoformat()}" for s in sorted(pending, key=lambda s: s.pk))
    return f"{subscriber.pk}|{subscriber.email.lower()}|{rows}"


def _confirmation_token(*, subscriber: Subscriber) -> tuple[str, list[Subscription]]:
    issued_at = int(time.time()) + 1  # covers rows consented earlier in this very second
    pending = _confirmable(subscriber=subscriber, issued_at=issued_at)
    state = _confirmation_state(subscriber=subscriber, pending=pending)
    return confirmation_token_make(subscriber_id=subscriber.pk, issued_at=issued_at, state=state), pending


def confirm_link_mail_send(
    name: str, *, to: str, mailing_list: MailingList | None, path: str, context: dict, to_name: str = ""
) -> None:
    """Mail a link to confirm something (a subscription, a new address) from the list, valid for the usual days."""
    email_send(
        name,
        to=to,
        to_name=to_name,
        from_email=sender_address(mailing_list.from_name, mailing_list.from_email) if mailing_list else None,
        reply_to=(mailing_list.reply_to or None) if mailing_list else None,
        context={
            "confirm_url": f"{settings.SITE_URL}{path}",
            "max_age_days": settings.CONFIRMATION_MAX_AGE_DAYS,
            **context,
        },
    )


def confirmation_mails_send(*, subscriber_ids: list[int]) -> int:
    """Mail each reader their confirmation link, at most once per address per interval; return how many were sent.

    For imports and bulk resends: one task takes a thousand readers.
    """
    sent = 0
    emails = dict(Subscriber.objects.filter(pk__in=subscriber_ids).values_list("pk", "email"))
    for subscriber_id in subscriber_ids:
        email = emails.get(subscriber_id)
        if email and confirmation_mail_allowed(email=email):
            sent += confirmation_mail_send(subscriber_id=subscriber_id)
    return sent


CONFIRMATION_CHUNK = 1000  # readers per confirmation task


def confirmation_mails_queue(*, subscriber_ids: list[int]) -> int:
    """Queue confirmation mails for the readers, CONFIRMATION_CHUNK to a task; return how many tasks."""
    chunks = [
        subscriber_ids[start : start + CONFIRMATION_CHUNK]
        for start in range(0, len(subscriber_ids), CONFIRMATION_CHUNK)
    ]
    for chunk in chunks:
        transaction.on_commit(lambda chunk=chunk: task_queue("subscriptions.tasks.confirmation_mails", chunk))
    return len(chunks)


def confirmation_mail_send(*, subscriber_id: int) -> bool:
    """Mail the subscriber a link confirming their pending subscriptions; return True if sent."""
    subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
    if subscriber is None or suppression_exists(email=subscriber.email):
        return False
    token, pending = _confirmation_token(subscriber=subscriber)
    if not pending:
        return False
    lists = [s.mailing_list for s in pending]
    confirm_link_mail_send(
        "confirm",
        # No name, not even in To: anyone can type one on the public form.
        to=subscriber.email,
        mailing_list=lists[0],
        path=f"/confirm/{token}/",
        context={"subscriber": subscriber, "lists": lists},
    )
    return True


def confirmation_mail_resend(*, subscriber_id: int) -> str:
    """Queue the confirmation mail again, as an admin asks; return what happened.

    One of "queued", "none_pending" (nothing waits for confirmation),
    "suppressed" (never mailed) or "too_soon" (one went out within
    CONFIRMATION_MAIL_INTERVAL: the same limit the public form has).
    """
    subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
    if subscriber is None or not subscriber.subscriptions.filter(status=Subscription.Status.PENDING).exists():
        return "none_pending"
    if suppression_exists(email=subscriber.email):
        return "suppressed"
    if not confirmation_mail_allowed(email=subscriber.email):
        return "too_soon"
    transaction.on_commit(lambda: task_queue("subscriptions.tasks.confirmation_mail", subscriber_id))
    return "queued"


@dataclass
class ConfirmOutcome:
    """What a confirmation link leads to.

    result is one of: "ready" (can be confirmed), "confirmed" (just now),
    "already" (used before, or nothing left to confirm), "expired",
    "invalid" (forged, or the reader no longer exists).
    """

    result: str
    subscriber: Subscriber | None = None
    lists: list[MailingList] = field(default_factory=list)


def _active_lists(subscriber: Subscriber) -> list[MailingList]:
    return [
        s.mailing_list
        for s in subscriber.subscriptions.filter(status=Subscription.Status.ACTIVE)
        .select_related("mailing_list")
        .order_by("mailing_list__name")
    ]


def confirmation_check(*, token: str) -> ConfirmOutcome:
    """Return what the confirmation token would do, changing nothing."""
    claim = confirmation_token_read(token)
    if claim is None:
        return ConfirmOutcome("invalid")
    subscriber = Subscriber.objects.filter(pk=claim.subscriber_id).first()
    if subscriber is None:
        return ConfirmOutcome("invalid")
    pending = _confirmable(subscriber=subscriber, issued_at=claim.issued_at)
    if not pending or not confirmation_token_matches(
        claim, state=_confirmation_state(subscriber=subscriber, pending=pending)
    ):
        return ConfirmOutcome("already", subscriber, _active_lists(subscriber))
    if confirmation_token_expired(claim, now=int(time.time())):
        return ConfirmOutcome("expired", subscriber, [s.mailing_list for s in pending])
    if suppression_exists(email=subscriber.email):
        return ConfirmOutcome("invalid")
    return ConfirmOutcome("ready", subscriber, [s.mailing_list for s in pending])


def subscriber_confirm(*, token: str) -> ConfirmOutcome:
    """Confirm the subscriptions the token names; harmless when repeated."""
    outcome = confirmation_check(token=token)
    if outcome.result != "ready":
        return outcome
    now = timezone.now()
    confirmed: list[MailingList] = []
    with transaction.atomic():
        for mailing_list in outcome.lists:
            # Conditional update: of two concurrent clicks only one activates.
            changed = Subscription.objects.filter(
                subscriber=outcome.subscriber, mailing_list=mailing_list, status=Subscription.Status.PENDING
            ).update(status=Subscription.Status.ACTIVE, confirmed_at=now, updated_at=now)
            if changed:
                confirmed.append(mailing_list)
        welcome_queue(subscriber_id=outcome.subscriber.pk, list_ids=[ml.pk for ml in confirmed if ml.send_welcome])
    if not confirmed:
        return ConfirmOutcome("already", outcome.subscriber, _active_lists(outcome.subscriber))
    return ConfirmOutcome("confirmed", outcome.subscriber, confirmed)

"""A reader's change of address: a link to the new address, re-confirmed before anything changes."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from dwvlist.celery import task_queue
from subscriptions.confirmation import confirm_link_mail_send
from subscriptions.models import Subscriber, Subscription
from subscriptions.ratelimit import confirmation_mail_allowed
from subscriptions.suppressions import suppression_exists
from subscriptions.tokens import (
    address_token_make,
    address_token_read,
)


def subscriber_address_change_request(*, subscriber_id: int, new_email: str) -> None:
    """Mail a confirmation link to the new address; the old one stays in use until then.

    Returns nothing on purpose: whether the new address is suppressed,
    rate-limited or someone else's, the reader sees the same answer.
    """
    subscriber = Subscriber.objects.get(pk=subscriber_id)
    if subscriber.email.lower() == new_email.lower():
        return
    if suppression_exists(email=new_email) or not confirmation_mail_allowed(email=new_email):
        return
    transaction.on_commit(lambda: task_queue("subscriptions.tasks.address_change_mail", subscriber_id, new_email))


def address_change_mail_send(*, subscriber_id: int, new_email: str) -> bool:
    """Mail the new address the link that moves the subscriber to it; return True if sent."""
    subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
    if subscriber is None or suppression_exists(email=new_email):
        return False
    token = address_token_make(subscriber_id=subscriber.pk, old_email=subscriber.email, new_email=new_email)
    first = (
        subscriber.subscriptions.exclude(status=Subscription.Status.UNSUBSCRIBED)
        .select_related("mailing_list")
        .order_by("mailing_list__name")
        .first()
    )
    confirm_link_mail_send(
        "confirm-address",
        to=new_email,
        to_name=subscriber.name,
        mailing_list=first.mailing_list if first else None,
        path=f"/confirm-address/{token}/",
        context={"subscriber": subscriber, "new_email": new_email},
    )
    return True


@dataclass
class AddressOutcome:
    """What an address link leads to.

    result is one of: "ready", "changed", "already" (done before),
    "taken" (another reader has that address: refused), "invalid".
    """

    result: str
    subscriber: Subscriber | None = None
    new_email: str = ""


def address_change_check(*, token: str) -> AddressOutcome:
    """Return what the address token would do, changing nothing."""
    claim = address_token_read(token)
    if claim is None:
        return AddressOutcome("invalid")
    subscriber = Subscriber.objects.filter(pk=claim.subscriber_id).first()
    if subscriber is None:
        return AddressOutcome("invalid")
    if subscriber.email.lower() == claim.new_email.lower():
        return AddressOutcome("already", subscriber, claim.new_email)
    if subscriber.email.lower() != claim.old_email.lower() or suppression_exists(email=claim.new_email):
        return AddressOutcome("invalid")
    if Subscriber.objects.filter(email__iexact=claim.new_email).exclude(pk=subscriber.pk).exists():
        return AddressOutcome("taken", subscriber, claim.new_email)
    return AddressOutcome("ready", subscriber, claim.new_email)


def subscriber_address_change_confirm(*, token: str) -> AddressOutcome:
    """Move the subscriber to the address the token names, unless another reader has it."""
    outcome = address_change_check(token=token)
    if outcome.result != "ready":
        return outcome
    try:
        with transaction.atomic():
            changed = Subscriber.objects.filter(pk=outcome.subscriber.pk, email=outcome.subscriber.email).update(
                email=outcome.new_email, updated_at=timezone.now()
            )
    except IntegrityError:  # someone took the address meanwhile
        return AddressOutcome("taken", outcome.subscriber, outcome.new_email)
    if not changed:
        return address_change_check(token=token)
    outcome.subscriber.refresh_from_db()
    return AddressOutcome("changed", outcome.subscriber, outcome.new_email)

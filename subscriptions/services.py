"""Writes on subscribers, subscriptions and the suppression list."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from subscriptions.addresses import email_hash
from subscriptions.models import Subscription, Suppression


def suppression_add(*, email: str, reason: str, event=None, note: str = "", keep_address: bool = True) -> Suppression:
    """Put the address on the suppression list (idempotent) and return its row.

    An address already suppressed keeps its first reason.
    """
    key = email_hash(email)
    existing = Suppression.objects.filter(email_hash=key).first()
    if existing:
        return existing
    try:
        with transaction.atomic():
            return Suppression.objects.create(
                email_hash=key,
                email=email if keep_address else "",
                reason=reason,
                event=event,
                note=note[:500],
            )
    except IntegrityError:  # another process suppressed it at the same moment
        return Suppression.objects.get(email_hash=key)


def suppression_exists(*, email: str) -> bool:
    """Return True if the address must never be mailed."""
    return Suppression.objects.filter(email_hash=email_hash(email)).exists()


def subscription_unsubscribe(*, subscriber_id: int, list_id: int, source: str, issue_id: int | None = None) -> bool:
    """Unsubscribe the reader from the list; return False if they already were.

    A conditional update, so it is idempotent and safe against a concurrent
    unsubscribe: the first source and issue recorded are kept.
    """
    updated = (
        Subscription.objects.filter(subscriber_id=subscriber_id, mailing_list_id=list_id)
        .exclude(status=Subscription.Status.UNSUBSCRIBED)
        .update(
            status=Subscription.Status.UNSUBSCRIBED,
            unsubscribed_at=timezone.now(),
            unsubscribe_source=source,
            unsubscribe_issue_id=issue_id,
            updated_at=timezone.now(),
        )
    )
    return updated == 1


def subscriber_unsubscribe_all(*, subscriber_id: int, source: str, issue_id: int | None = None) -> int:
    """Unsubscribe the reader from every list; return how many changed."""
    return (
        Subscription.objects.filter(subscriber_id=subscriber_id)
        .exclude(status=Subscription.Status.UNSUBSCRIBED)
        .update(
            status=Subscription.Status.UNSUBSCRIBED,
            unsubscribed_at=timezone.now(),
            unsubscribe_source=source,
            unsubscribe_issue_id=issue_id,
            updated_at=timezone.now(),
        )
    )

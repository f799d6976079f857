"""Unsubscribing: from one list or all of them, by the link in a mail, and back again."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet
from django.utils import timezone

from subscriptions.models import Subscription
from subscriptions.suppressions import suppression_exists
from subscriptions.tokens import unsubscribe_token_read


def _unsubscribe(rows: QuerySet[Subscription], *, source: str, issue_id: int | None) -> int:
    return rows.exclude(status=Subscription.Status.UNSUBSCRIBED).update(
        status=Subscription.Status.UNSUBSCRIBED,
        unsubscribed_at=timezone.now(),
        unsubscribe_source=source,
        unsubscribe_issue_id=issue_id,
        updated_at=timezone.now(),
    )


def subscription_unsubscribe(*, subscriber_id: int, list_id: int, source: str, issue_id: int | None = None) -> bool:
    """Unsubscribe the reader from the list; return False if they already were.

    A conditional update, so it is idempotent and safe against a concurrent
    unsubscribe: the first source and issue recorded are kept.
    """
    rows = Subscription.objects.filter(subscriber_id=subscriber_id, mailing_list_id=list_id)
    return _unsubscribe(rows, source=source, issue_id=issue_id) == 1


def subscriber_unsubscribe_all(*, subscriber_id: int, source: str, issue_id: int | None = None) -> int:
    """Unsubscribe the reader from every list; return how many changed."""
    return subscribers_unsubscribe_all(subscriber_ids=[subscriber_id], source=source, issue_id=issue_id)


def subscribers_unsubscribe_all(*, subscriber_ids: list[int], source: str, issue_id: int | None = None) -> int:
    """Unsubscribe the readers from every list, in one statement; return how many subscriptions changed."""
    return _unsubscribe(Subscription.objects.filter(subscriber_id__in=subscriber_ids), source=source, issue_id=issue_id)


@dataclass
class UnsubscribeOutcome:
    subscription: Subscription
    changed: bool


def unsubscribe_token_subscription(*, token: str) -> Subscription | None:
    """Return the subscription an unsubscribe token names, or None if forged or gone."""
    claim = unsubscribe_token_read(token)
    if claim is None:
        return None
    return (
        Subscription.objects.filter(subscriber_id=claim.subscriber_id, mailing_list_id=claim.list_id)
        .select_related("subscriber", "mailing_list")
        .first()
    )


def subscription_unsubscribe_by_token(*, token: str, source: str) -> UnsubscribeOutcome | None:
    """Unsubscribe as the token says, recording its issue; None if the token is no good."""
    from issues.models import Issue  # issues depends on subscriptions, not the reverse

    claim = unsubscribe_token_read(token)
    subscription = unsubscribe_token_subscription(token=token)
    if claim is None or subscription is None:
        return None
    issue_id = claim.issue_id if claim.issue_id and Issue.objects.filter(pk=claim.issue_id).exists() else None
    changed = subscription_unsubscribe(
        subscriber_id=claim.subscriber_id, list_id=claim.list_id, source=source, issue_id=issue_id
    )
    subscription.refresh_from_db()
    return UnsubscribeOutcome(subscription, changed)


@dataclass
class ResubscribeOutcome:
    """What "that was a mistake: subscribe me again" did: "resubscribed", "already" or "suppressed"."""

    subscription: Subscription
    result: str


def subscription_resubscribe_by_token(*, token: str, client: str) -> ResubscribeOutcome | None:
    """Put the reader back on the list their unsubscribe link names; None if the token is no good.

    The link reached the reader's mailbox, so following it stands for a
    confirmation: the subscription is active again at once, with a fresh
    consent record. A suppressed address stays off every list.
    """
    subscription = unsubscribe_token_subscription(token=token)
    if subscription is None:
        return None
    if suppression_exists(email=subscription.subscriber.email):
        return ResubscribeOutcome(subscription, "suppressed")
    now = timezone.now()
    changed = (
        Subscription.objects.filter(pk=subscription.pk, status=Subscription.Status.UNSUBSCRIBED).update(
            status=Subscription.Status.ACTIVE,
            consent_source=Subscription.ConsentSource.FORM,
            consented_at=now,
            consent_detail=f"re-subscribed from the unsubscribe link's page, client {client}"[:300],
            confirmed_at=now,
            unsubscribed_at=None,
            unsubscribe_source="",
            unsubscribe_issue=None,
            updated_at=now,
        )
        == 1
    )
    subscription.refresh_from_db()
    return ResubscribeOutcome(subscription, "resubscribed" if changed else "already")

"""A reader's preferences: their name and lists, changed from the link in every mail."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from subscriptions.models import MailingList, Subscriber, Subscription
from subscriptions.services import subscription_join, welcome_queue
from subscriptions.tokens import (
    preferences_token_read,
)
from subscriptions.unsubscribing import subscription_unsubscribe


def preferences_token_subscriber(*, token: str) -> Subscriber | None:
    """Return the subscriber a preferences token names, or None."""
    subscriber_id = preferences_token_read(token)
    if subscriber_id is None:
        return None
    return Subscriber.objects.filter(pk=subscriber_id).first()


def preference_lists(*, subscriber: Subscriber) -> list[tuple[MailingList, Subscription | None]]:
    """Return the lists the reader can manage: every public list, and private ones they are on."""
    subscriptions = {s.mailing_list_id: s for s in subscriber.subscriptions.all()}
    joined = [list_id for list_id, s in subscriptions.items() if s.status != Subscription.Status.UNSUBSCRIBED]
    lists = MailingList.objects.filter(is_public=True) | MailingList.objects.filter(pk__in=joined)
    return [(ml, subscriptions.get(ml.pk)) for ml in lists.distinct().order_by("name")]


def subscriber_preferences_update(*, subscriber_id: int, name: str, list_ids: Iterable[int]) -> None:
    """Set the reader's name and exactly which of their manageable lists they get.

    The preferences link came to the reader's own inbox, so choosing a list
    here needs no further confirmation.
    """
    chosen = set(list_ids)
    now = timezone.now()
    with transaction.atomic():
        subscriber = Subscriber.objects.select_for_update().get(pk=subscriber_id)
        if subscriber.name != name:
            subscriber.name = name
            subscriber.save(update_fields=["name", "updated_at"])
        welcome: list[int] = []
        for mailing_list, subscription in preference_lists(subscriber=subscriber):
            active = subscription is not None and subscription.status == Subscription.Status.ACTIVE
            if mailing_list.pk in chosen and not active:
                _, activated = subscription_join(
                    subscriber=subscriber,
                    mailing_list=mailing_list,
                    detail="preference centre",
                    now=now,
                    confirmed=True,
                )
                if activated and mailing_list.send_welcome:
                    welcome.append(mailing_list.pk)
            elif mailing_list.pk not in chosen and subscription is not None:
                subscription_unsubscribe(
                    subscriber_id=subscriber.pk,
                    list_id=mailing_list.pk,
                    source=Subscription.UnsubscribeSource.PREFERENCES,
                )
        welcome_queue(subscriber_id=subscriber.pk, list_ids=welcome)

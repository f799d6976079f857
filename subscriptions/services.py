"""Writes that put readers on lists: the public form, staff and the API; the welcome mail.

Confirming is in confirmation.py, unsubscribing in unsubscribing.py, the
suppression list in suppressions.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from dwvlist.celery import task_queue
from dwvlist.emails import email_send, sender_address
from subscriptions.links import list_headers, preferences_url, unsubscribe_mailto_for, unsubscribe_url
from subscriptions.models import MailingList, Subscriber, Subscription
from subscriptions.ratelimit import confirmation_mail_allowed

# Imported "as" themselves: issues.feedback still imports these three from here.
from subscriptions.suppressions import suppression_add as suppression_add
from subscriptions.suppressions import suppression_added_report as suppression_added_report
from subscriptions.suppressions import suppression_exists
from subscriptions.unsubscribing import subscriber_unsubscribe_all as subscriber_unsubscribe_all
from subscriptions.unsubscribing import subscription_unsubscribe

# --- Subscribing ------------------------------------------------------------------


def _subscriber_get_or_create(*, email: str, name: str) -> Subscriber:
    subscriber = Subscriber.objects.filter(email__iexact=email).first()
    if subscriber is None:
        try:
            with transaction.atomic():
                return Subscriber.objects.create(email=email, name=name)
        except IntegrityError:  # created by a concurrent post
            subscriber = Subscriber.objects.get(email__iexact=email)
    # Strangers can post any address: a name typed on the public form only
    # fills a blank, it never overwrites what the reader chose.
    if name and not subscriber.name:
        subscriber.name = name
        subscriber.save(update_fields=["name", "updated_at"])
    return subscriber


def _consent_fields(
    *, mailing_list: MailingList, detail: str, now: datetime, confirmed: bool, source: str, confirm_always: bool
) -> dict:
    active = confirmed or not (mailing_list.double_opt_in or confirm_always)
    return {
        "status": Subscription.Status.ACTIVE if active else Subscription.Status.PENDING,
        "consent_source": source,
        "consented_at": now,
        "consent_detail": detail[:300],
        "confirmed_at": now if active else None,
        "unsubscribed_at": None,
        "unsubscribe_source": "",
        "unsubscribe_issue": None,
    }


def subscription_join(
    *,
    subscriber: Subscriber,
    mailing_list: MailingList,
    detail: str,
    now: datetime,
    confirmed: bool,
    source: str = Subscription.ConsentSource.FORM,
    confirm_always: bool = False,
) -> tuple[Subscription, bool]:
    """Put the subscriber on the list; return the row and whether it became active just now.

    A new or unsubscribed reader starts over with a fresh consent record;
    a pending or active one is left as is (a repeated post must not reset
    the consent that a confirmation mail already in flight refers to).
    With confirm_always, the reader confirms by mail even on a list without
    double opt-in (a request by email proves nothing about who sent it).
    """
    subscription = (
        Subscription.objects.select_for_update().filter(subscriber=subscriber, mailing_list=mailing_list).first()
    )
    fields = _consent_fields(
        mailing_list=mailing_list,
        detail=detail,
        now=now,
        confirmed=confirmed,
        source=source,
        confirm_always=confirm_always,
    )
    if subscription is None:
        try:
            with transaction.atomic():
                subscription = Subscription.objects.create(subscriber=subscriber, mailing_list=mailing_list, **fields)
            return subscription, subscription.status == Subscription.Status.ACTIVE
        except IntegrityError:  # a concurrent post created it
            subscription = Subscription.objects.select_for_update().get(
                subscriber=subscriber, mailing_list=mailing_list
            )
    if subscription.status == Subscription.Status.UNSUBSCRIBED:
        for name, value in fields.items():
            setattr(subscription, name, value)
        subscription.save()
        return subscription, subscription.status == Subscription.Status.ACTIVE
    if subscription.status == Subscription.Status.PENDING and (
        confirmed or not (mailing_list.double_opt_in or confirm_always)
    ):
        subscription.status = Subscription.Status.ACTIVE
        subscription.confirmed_at = now
        subscription.save(update_fields=["status", "confirmed_at", "updated_at"])
        return subscription, True
    return subscription, False


def subscriber_subscribe(*, email: str, name: str, lists: Sequence[MailingList], client: str) -> None:
    """Subscribe the address to the lists as the public form does.

    Returns nothing on purpose: whatever the address's state (new, pending,
    active, suppressed, rate-limited), the caller must answer the same.
    Double opt-in lists get a pending subscription and one confirmation
    mail (at most one per address per interval); the others are active at
    once, with a welcome mail where the list wants one.
    """
    if suppression_exists(email=email):
        return
    now = timezone.now()
    detail = f"web form, client {client}"
    with transaction.atomic():
        subscriber = _subscriber_get_or_create(email=email, name=name)
        pending = False
        welcome: list[int] = []
        for mailing_list in lists:
            subscription, activated = subscription_join(
                subscriber=subscriber, mailing_list=mailing_list, detail=detail, now=now, confirmed=False
            )
            if subscription.status == Subscription.Status.PENDING:
                pending = True
            if activated and mailing_list.send_welcome:
                welcome.append(mailing_list.pk)
        if pending and confirmation_mail_allowed(email=subscriber.email):
            subscriber_id = subscriber.pk
            transaction.on_commit(lambda: task_queue("subscriptions.tasks.confirmation_mail", subscriber_id))
        welcome_queue(subscriber_id=subscriber.pk, list_ids=welcome)


# --- Added and changed by staff (the API) -----------------------------------------


@dataclass
class SubscriberUpsert:
    """What subscriber_upsert did: "created", "updated" or "unchanged"."""

    subscriber: Subscriber
    result: str


def subscriber_upsert(
    *,
    email: str,
    name: str | None,
    lists: Sequence[MailingList],
    consent_given: bool,
    detail: str,
    source: str = Subscription.ConsentSource.API,
    actor=None,
) -> SubscriberUpsert:
    """Add the address (or find it) and put it on the lists, recording the consent.

    The address must already be normalised (addresses.email_normalize). A
    name given replaces the reader's; lists they are already on (active or
    pending) are left as they are, and no list is removed. Double opt-in
    lists get a pending subscription and a confirmation mail unless
    `consent_given` (the caller vouches for a consent obtained elsewhere,
    recorded in `detail`). A suppressed address is refused. `actor` is the
    staff user behind the call, for the audit trail.
    """
    if suppression_exists(email=email):
        raise ValidationError("This address is on the suppression list and cannot be added.", code="suppressed")
    now = timezone.now()
    with transaction.atomic():
        created = not Subscriber.objects.filter(email__iexact=email).exists()
        subscriber = _subscriber_get_or_create(email=email, name=name or "")
        changed = created
        if name is not None and subscriber.name != name:
            subscriber.name = name
            subscriber.save(update_fields=["name", "updated_at"])
            changed = True
        pending = False
        welcome: list[int] = []
        for mailing_list in lists:
            before = (
                Subscription.objects.filter(subscriber=subscriber, mailing_list=mailing_list)
                .values_list("status", flat=True)
                .first()
            )
            subscription, activated = subscription_join(
                subscriber=subscriber,
                mailing_list=mailing_list,
                detail=detail,
                now=now,
                confirmed=consent_given,
                source=source,
            )
            changed = changed or subscription.status != before
            pending = pending or subscription.status == Subscription.Status.PENDING
            if activated and mailing_list.send_welcome:
                welcome.append(mailing_list.pk)
        if pending and changed and confirmation_mail_allowed(email=subscriber.email):
            subscriber_id = subscriber.pk
            transaction.on_commit(lambda: task_queue("subscriptions.tasks.confirmation_mail", subscriber_id))
        welcome_queue(subscriber_id=subscriber.pk, list_ids=welcome)
    result = "created" if created else ("updated" if changed else "unchanged")
    return SubscriberUpsert(subscriber=subscriber, result=result)


def subscriber_lists_set(
    *,
    subscriber_id: int,
    lists: Sequence[MailingList],
    consent_given: bool,
    detail: str,
    source: str = Subscription.ConsentSource.API,
    actor=None,
) -> None:
    """Make the lists exactly those the reader gets (or is confirming): join the new, leave the others."""
    subscriber = Subscriber.objects.get(pk=subscriber_id)
    wanted = {ml.pk for ml in lists}
    on = set(
        subscriber.subscriptions.exclude(status=Subscription.Status.UNSUBSCRIBED).values_list(
            "mailing_list_id", flat=True
        )
    )
    joining = [ml for ml in lists if ml.pk not in on]
    with transaction.atomic():
        if joining:
            subscriber_upsert(
                email=subscriber.email,
                name=None,
                lists=joining,
                consent_given=consent_given,
                detail=detail,
                source=source,
                actor=actor,
            )
        for list_id in subscriber.subscriptions.exclude(mailing_list_id__in=wanted).values_list(
            "mailing_list_id", flat=True
        ):
            subscription_unsubscribe(
                subscriber_id=subscriber_id, list_id=list_id, source=Subscription.UnsubscribeSource.API
            )


def subscriber_name_set(*, subscriber_id: int, name: str, actor=None) -> bool:
    """Set the reader's name; return False if it was already that."""
    updated = (
        Subscriber.objects.filter(pk=subscriber_id).exclude(name=name).update(name=name, updated_at=timezone.now())
    )
    return updated == 1


def mailing_list_save(*, mailing_list: MailingList, actor=None) -> MailingList:
    """Validate the list's fields as the admin's form does and save it; raise ValidationError naming the fields."""
    for name in ("name", "from_name"):
        value = getattr(mailing_list, name)
        if "\r" in value or "\n" in value:
            raise ValidationError({name: "Must be a single line, without line breaks."})
    mailing_list.full_clean()
    mailing_list.save()
    return mailing_list


# --- The welcome mail ---------------------------------------------------------------


def welcome_queue(*, subscriber_id: int, list_ids: Iterable[int]) -> None:
    for list_id in list_ids:
        transaction.on_commit(
            lambda list_id=list_id: task_queue("subscriptions.tasks.welcome_mail", subscriber_id, list_id)
        )


def welcome_mail_send(*, subscriber_id: int, list_id: int) -> bool:
    """Mail the list's welcome to an active subscriber; return True if sent."""
    subscription = (
        Subscription.objects.filter(
            subscriber_id=subscriber_id, mailing_list_id=list_id, status=Subscription.Status.ACTIVE
        )
        .select_related("subscriber", "mailing_list")
        .first()
    )
    if subscription is None or suppression_exists(email=subscription.subscriber.email):
        return False
    mailing_list = subscription.mailing_list
    unsubscribe = unsubscribe_url(subscriber_id=subscriber_id, list_id=list_id)
    email_send(
        "welcome",
        to=subscription.subscriber.email,
        from_email=sender_address(mailing_list.from_name, mailing_list.from_email),
        reply_to=mailing_list.reply_to or None,
        headers=list_headers(
            mailing_list=mailing_list,
            unsubscribe=unsubscribe,
            mailto=unsubscribe_mailto_for(mailing_list=mailing_list, subscriber_id=subscriber_id),
        ),
        context={
            "subscriber": subscription.subscriber,
            "mailing_list": mailing_list,
            "unsubscribe_url": unsubscribe,
            "preferences_url": preferences_url(subscriber_id=subscriber_id),
        },
    )
    return True

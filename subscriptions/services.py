"""Writes on subscribers, subscriptions and the suppression list."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from dwvlist.celery import task_queue
from dwvlist.emails import email_send, sender_address
from subscriptions.addresses import email_hash
from subscriptions.links import list_headers, preferences_url, unsubscribe_mailto_for, unsubscribe_url
from subscriptions.models import MailingList, Subscriber, Subscription, Suppression
from subscriptions.ratelimit import confirmation_mail_allowed
from subscriptions.suppressions import suppression_added_report, suppression_find
from subscriptions.tokens import (
    confirmation_token_expired,
    confirmation_token_make,
    confirmation_token_matches,
    confirmation_token_read,
    unsubscribe_token_read,
)

log = logging.getLogger(__name__)


def suppression_add(*, email: str, reason: str, event=None, note: str = "", keep_address: bool = True) -> Suppression:
    """Put the address on the suppression list (idempotent) and return its row.

    An address already suppressed keeps its first reason.
    """
    existing = suppression_find(email=email)
    if existing:
        return existing
    key = email_hash(email)
    try:
        with transaction.atomic():
            added = Suppression.objects.create(
                email_hash=key,
                email=email if keep_address else "",
                reason=reason,
                event=event,
                note=note[:500],
            )
    except IntegrityError:  # another process suppressed it at the same moment
        return Suppression.objects.get(email_hash=key)
    suppression_added_report(email=email, suppression=added)
    return added


def suppression_exists(*, email: str) -> bool:
    """Return True if the address must never be mailed."""
    return suppression_find(email=email) is not None


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
    return subscribers_unsubscribe_all(subscriber_ids=[subscriber_id], source=source, issue_id=issue_id)


def subscribers_unsubscribe_all(*, subscriber_ids: list[int], source: str, issue_id: int | None = None) -> int:
    """Unsubscribe the readers from every list, in one statement; return how many subscriptions changed."""
    return (
        Subscription.objects.filter(subscriber_id__in=subscriber_ids)
        .exclude(status=Subscription.Status.UNSUBSCRIBED)
        .update(
            status=Subscription.Status.UNSUBSCRIBED,
            unsubscribed_at=timezone.now(),
            unsubscribe_source=source,
            unsubscribe_issue_id=issue_id,
            updated_at=timezone.now(),
        )
    )


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


def welcome_queue(*, subscriber_id: int, list_ids: Iterable[int]) -> None:
    for list_id in list_ids:
        transaction.on_commit(
            lambda list_id=list_id: task_queue("subscriptions.tasks.welcome_mail", subscriber_id, list_id)
        )


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


def suppression_remove(*, suppression_id: int, actor=None) -> bool:
    """Take an address off the suppression list; return False if it was not there.

    An erased reader's entry stays: they asked never to be mailed again,
    and only its hash is left to match against.
    """
    entry = Suppression.objects.filter(pk=suppression_id).first()
    if entry is None:
        return False
    if entry.reason == Suppression.Reason.ERASED or not entry.email:
        raise ValidationError("An erased reader's entry cannot be removed: they asked never to be mailed again.")
    return Suppression.objects.filter(pk=suppression_id).delete()[0] > 0


def mailing_list_save(*, mailing_list: MailingList, actor=None) -> MailingList:
    """Validate the list's fields as the admin's form does and save it; raise ValidationError naming the fields."""
    for name in ("name", "from_name"):
        value = getattr(mailing_list, name)
        if "\r" in value or "\n" in value:
            raise ValidationError({name: "Must be a single line, without line breaks."})
    mailing_list.full_clean()
    mailing_list.save()
    return mailing_list


# --- Confirming -------------------------------------------------------------------


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


# --- Unsubscribing ----------------------------------------------------------------


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


# --- Data export and erasure --------------------------------------------------------

"""Unsubscribing by mail: the List-Unsubscribe mailto of each copy.

Every copy names its reader's own address, LIST+unsubscribe-TOKEN@domain;
a mail to it unsubscribes exactly the reader and list in the token,
whoever it claims to be from (a mail client's unsubscribe button sends it
from whatever identity it likes). The bare LIST+unsubscribe@domain
unsubscribes nobody, since a From header can be forged: a reader who
writes to it gets, at most, a mail with the link to their preferences,
sent to their own address and rate limited.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.utils import formataddr

from django.core.exceptions import ValidationError
from django.db import transaction

from dwvlist.celery import task_queue
from dwvlist.emails import email_send
from subscriptions.addresses import email_normalize
from subscriptions.links import preferences_url
from subscriptions.models import MailingList, Subscriber, Subscription
from subscriptions.ratelimit import mailto_answer_allowed
from subscriptions.suppressions import suppression_find
from subscriptions.tokens import UnsubscribeClaim, mailto_token_read
from subscriptions.unsubscribing import subscription_unsubscribe

logger = logging.getLogger(__name__)

_MARK = "+unsubscribe"


@dataclass(frozen=True)
class MailtoRequest:
    """A mail to an unsubscribe address.

    kind is "reader" (a reader's own address: `claim` says whom), "bare"
    (the list's bare address) or "invalid" (a token we did not make).
    """

    kind: str
    mailing_list: MailingList | None = None
    claim: UnsubscribeClaim | None = None


def _list_of(base: str, domain: str, list_id: int | None = None) -> MailingList | None:
    lists = MailingList.objects.filter(from_email__iexact=f"{base}@{domain}")
    if list_id is not None:
        lists = lists.filter(pk=list_id)
    return lists.order_by("pk").first()


def mailto_request_find(*, recipients: list[str]) -> MailtoRequest | None:
    """Return the unsubscribe request among the mail's recipients, or None if it went to no such address."""
    found: MailtoRequest | None = None
    for address in recipients:
        local, _, domain = address.strip().strip("<>").rpartition("@")
        base, mark, rest = local.lower().partition(_MARK)
        if not mark or not base or (rest and not rest.startswith("-")):
            continue
        if rest:
            claim = mailto_token_read(rest[1:])
            mailing_list = _list_of(base, domain, claim.list_id) if claim else None
            if claim is None or mailing_list is None:
                found = found or MailtoRequest("invalid")
                continue
            return MailtoRequest("reader", mailing_list, claim)
        mailing_list = _list_of(base, domain)
        if mailing_list is not None and (found is None or found.kind == "invalid"):
            found = MailtoRequest("bare", mailing_list)
    return found


def subscription_unsubscribe_by_mailto(*, claim: UnsubscribeClaim, issue_id: int | None) -> bool:
    """Unsubscribe the reader from the list the token names; return False if nothing changed.

    `issue_id` is the token's issue if it still exists (the caller, above
    subscriptions, can tell), recorded as the cause.
    """
    changed = subscription_unsubscribe(
        subscriber_id=claim.subscriber_id,
        list_id=claim.list_id,
        source=Subscription.UnsubscribeSource.MAILTO,
        issue_id=issue_id,
    )
    logger.info("mailto unsubscribe: subscriber %s list %s changed=%s", claim.subscriber_id, claim.list_id, changed)
    return changed


def preferences_link_answer(*, sender: str, mailing_list: MailingList) -> bool:
    """Queue a mail with the preferences link to the sender if they are a reader; return True if queued.

    Nobody is unsubscribed. Strangers get nothing (no backscatter), nor
    does a reader who had one within the rate limit's window.
    """
    try:
        email = email_normalize(sender)
    except ValidationError:
        return False
    subscriber = Subscriber.objects.filter(email__iexact=email).first()
    if subscriber is None or suppression_find(email=subscriber.email) is not None:
        return False
    if not mailto_answer_allowed(email=subscriber.email):
        return False
    subscriber_id, list_id = subscriber.pk, mailing_list.pk
    transaction.on_commit(lambda: task_queue("subscriptions.tasks.preferences_link_mail", subscriber_id, list_id))
    return True


def preferences_link_mail_send(*, subscriber_id: int, list_id: int) -> bool:
    """Mail the reader the link to their preferences, from the list; return True if sent."""
    subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
    mailing_list = MailingList.objects.filter(pk=list_id).first()
    if subscriber is None or mailing_list is None or suppression_find(email=subscriber.email) is not None:
        return False
    email_send(
        "preferences-link",
        to=subscriber.email,
        from_email=formataddr((" ".join(mailing_list.from_name.split()), mailing_list.from_email)),
        # An automatic answer (RFC 3834): mail systems must not answer it in turn.
        headers={"Auto-Submitted": "auto-replied"},
        context={"mailing_list": mailing_list, "preferences_url": preferences_url(subscriber_id=subscriber.pk)},
    )
    return True

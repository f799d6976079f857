"""What we hold about a reader: everything, as data they can take away; and erasing it."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models.functions import Lower

from subscriptions.addresses import email_hash
from subscriptions.models import Subscriber, Suppression


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def subscriber_data_export(*, subscriber_id: int) -> dict:
    """Return everything we hold about the reader, as JSON-ready data."""
    subscriber = Subscriber.objects.get(pk=subscriber_id)
    subscriptions = subscriber.subscriptions.select_related("mailing_list", "unsubscribe_issue").order_by("pk")
    deliveries = subscriber.deliveries.select_related("issue").order_by("pk")
    return {
        "email": subscriber.email,
        "name": subscriber.name,
        "created_at": _iso(subscriber.created_at),
        "updated_at": _iso(subscriber.updated_at),
        "subscriptions": [
            {
                "list": s.mailing_list.name,
                "list_slug": s.mailing_list.slug,
                "status": s.status,
                "consent_source": s.consent_source,
                "consented_at": _iso(s.consented_at),
                "consent_detail": s.consent_detail,
                "confirmed_at": _iso(s.confirmed_at),
                "unsubscribed_at": _iso(s.unsubscribed_at),
                "unsubscribe_source": s.unsubscribe_source,
                "unsubscribe_issue": s.unsubscribe_issue.title if s.unsubscribe_issue else None,
            }
            for s in subscriptions
        ],
        "deliveries": [
            {
                "issue": d.issue.title,
                "email": d.email,
                "status": d.status,
                "sent_at": _iso(d.sent_at),
                "delivered_at": _iso(d.delivered_at),
                "opened_at": _iso(d.opened_at),
                "clicked_at": _iso(d.clicked_at),
            }
            for d in deliveries
        ],
    }


def subscriber_erase(*, subscriber_id: int) -> bool:
    """Delete the reader and their personal data; keep only a keyed hash on the suppression list.

    The hash stops a later import or form post from silently re-adding them.
    Delivery rows stay (the issues' figures must add up) without address
    or subscriber. Returns False if they were already gone.
    """
    return subscribers_erase(subscriber_ids=[subscriber_id]) == 1


def subscribers_erase(*, subscriber_ids: list[int]) -> int:
    """Erase the readers as subscriber_erase does, all of them in a few set-based statements; return how many.

    A bulk erase of thousands costs the same dozen statements per batch
    that one reader does, not a dozen per reader.
    """
    from issues.models import Delivery, DeliveryEvent  # issues depends on subscriptions, not the reverse

    with transaction.atomic():
        rows = list(Subscriber.objects.select_for_update().filter(pk__in=subscriber_ids).values_list("pk", "email"))
        if not rows:
            return 0
        ids = [pk for pk, _ in rows]
        hashes = {email_hash(email) for _, email in rows}
        Delivery.objects.filter(subscriber_id__in=ids).update(email="")
        # Through the delivery link, and by address (an index on its lower case) for events that have none.
        DeliveryEvent.objects.filter(delivery__subscriber_id__in=ids).update(recipient="", payload={})
        DeliveryEvent.objects.alias(address=Lower("recipient")).filter(
            address__in={email.lower() for _, email in rows}
        ).update(recipient="", payload={})
        # An address suppressed earlier (a bounce, say) keeps its first reason
        # but loses its text; the others are suppressed as erased.
        Suppression.objects.filter(email_hash__in=hashes).update(email="")
        Suppression.objects.bulk_create(
            [Suppression(email_hash=key, email="", reason=Suppression.Reason.ERASED) for key in hashes],
            ignore_conflicts=True,
        )
        Subscriber.objects.filter(pk__in=ids).delete()
    return len(ids)

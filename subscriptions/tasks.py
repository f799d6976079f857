"""Reader mail sent in the background: confirmations, welcomes, address changes.

Each task takes ids, loads, and calls a service; the services skip
suppressed addresses and rows that changed since the task was queued.
"""

from __future__ import annotations

from celery import shared_task

# A mail server that is down now may be back later.
_RETRY_ON_OS_ERROR = {"autoretry_for": (OSError,), "retry_backoff": True, "max_retries": 5}


@shared_task(name="subscriptions.tasks.confirmation_mail", **_RETRY_ON_OS_ERROR)
def confirmation_mail(subscriber_id: int) -> bool:
    """Mail the subscriber the link confirming their pending subscriptions."""
    from subscriptions.confirmation import confirmation_mail_send

    return confirmation_mail_send(subscriber_id=subscriber_id)


@shared_task(name="subscriptions.tasks.confirmation_mails", **_RETRY_ON_OS_ERROR)
def confirmation_mails(subscriber_ids: list[int]) -> int:
    """Mail a thousand readers their confirmation links (imports, bulk resends)."""
    from subscriptions.confirmation import confirmation_mails_send

    return confirmation_mails_send(subscriber_ids=subscriber_ids)


@shared_task(name="subscriptions.tasks.welcome_mail", **_RETRY_ON_OS_ERROR)
def welcome_mail(subscriber_id: int, list_id: int) -> bool:
    """Mail the list's welcome to a newly active subscriber."""
    from subscriptions.services import welcome_mail_send

    return welcome_mail_send(subscriber_id=subscriber_id, list_id=list_id)


@shared_task(
    name="subscriptions.tasks.address_change_mail", autoretry_for=(OSError,), retry_backoff=True, max_retries=5
)
def address_change_mail(subscriber_id: int, new_email: str) -> bool:
    """Mail the new address the link that moves the subscriber to it."""
    from subscriptions.address_change import address_change_mail_send

    return address_change_mail_send(subscriber_id=subscriber_id, new_email=new_email)


@shared_task(name="subscriptions.tasks.preferences_link_mail", **_RETRY_ON_OS_ERROR)
def preferences_link_mail(subscriber_id: int, list_id: int) -> bool:
    """Mail a reader who wrote to the bare unsubscribe address the link to their preferences."""
    from subscriptions.mailto import preferences_link_mail_send

    return preferences_link_mail_send(subscriber_id=subscriber_id, list_id=list_id)


@shared_task(name="dwvlist.tasks.probe")
def probe() -> dict:
    """Return what the worker sees of the database: proof of a live round trip."""
    from django.db import connection

    from subscriptions.models import Subscriber

    return {"vendor": connection.vendor, "subscribers": Subscriber.objects.count()}

"""Reader mail sent in the background: confirmations, welcomes, address changes.

Each task takes ids, loads, and calls a service; the services skip
suppressed addresses and rows that changed since the task was queued.
"""

from __future__ import annotations

from celery import shared_task

from subscriptions import services


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def confirmation_mail(subscriber_id: int) -> bool:
    """Mail the subscriber the link confirming their pending subscriptions."""
    return services.confirmation_mail_send(subscriber_id=subscriber_id)


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def welcome_mail(subscriber_id: int, list_id: int) -> bool:
    """Mail the list's welcome to a newly active subscriber."""
    return services.welcome_mail_send(subscriber_id=subscriber_id, list_id=list_id)


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def address_change_mail(subscriber_id: int, new_email: str) -> bool:
    """Mail the new address the link that moves the subscriber to it."""
    return services.address_change_mail_send(subscriber_id=subscriber_id, new_email=new_email)

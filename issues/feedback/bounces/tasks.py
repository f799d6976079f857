"""Celery work for returned mail: reading the bounce mailbox (beat, every BOUNCE_MAILBOX_INTERVAL)."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings


@shared_task(name="issues.bounces.mailbox_poll", ignore_result=True)
def bounces_mailbox_poll() -> int:
    """Read the bounce mailbox once; return how many messages were read."""
    from issues.feedback.bounces.mailbox import mailbox_poll

    if not settings.BOUNCE_MAILBOX_URL:
        return 0
    result = mailbox_poll(url=settings.BOUNCE_MAILBOX_URL)
    return result.read if result else 0

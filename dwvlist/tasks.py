from __future__ import annotations

from celery import shared_task
from django.db import connection

from subscriptions.models import Subscriber


@shared_task
def probe() -> dict:
    """Return what the worker sees of the database: proof of a live round trip."""
    return {"vendor": connection.vendor, "subscribers": Subscriber.objects.count()}

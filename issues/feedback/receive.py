"""Taking in a webhook request's tracking events: stored and applied together, the leftovers for Celery.

issues.feedback.intake classifies, finds and stores the events;
issues.feedback.effects applies them. Here the two are put together in
one transaction (or, on PostgreSQL for times-only events, one statement),
for up to FEEDBACK_INLINE_SECONDS.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from issues.feedback.effects import effects_apply_grouped
from issues.feedback.intake import (
    Incoming,
    deliveries_find,
    events_insert,
    events_insert_applied,
    incoming_from,
    times_only,
    tracked_filter,
)
from issues.models import DeliveryEvent

logger = logging.getLogger(__name__)


@dataclass
class Outcome:
    stored: list[Incoming] = field(default_factory=list)
    applied: list[int] = field(default_factory=list)
    deferred: list[int] = field(default_factory=list)


def events_receive(*, provider: str, events: list) -> Outcome:
    """Store a request's tracking events (anymail's) and apply their effects, as items_receive does."""
    return items_receive([incoming_from(provider=provider, event=event) for event in events])


def items_receive(items: list[Incoming]) -> Outcome:
    """Store events and apply their effects; return what was stored, applied and deferred.

    Effects are applied in the same transaction as the insert, the events
    marked applied as they are inserted, for up to FEEDBACK_INLINE_SECONDS;
    the rest (or everything, if applying fails) are left unapplied for the
    caller to queue to Celery.
    """
    outcome = Outcome()
    if not items:
        return outcome
    providers = ", ".join(sorted({item.provider for item in items}))
    deliveries_find(items)
    items = tracked_filter(items)
    budget = settings.FEEDBACK_INLINE_SECONDS
    if budget > 0 and times_only(items):
        try:
            # A single statement is atomic by itself; inside a caller's
            # transaction it gets a savepoint, so a failure leaves that usable.
            with nullcontext() if connection.get_autocommit() else transaction.atomic():
                outcome.stored = events_insert_applied(items)
            outcome.applied = [item.pk for item in outcome.stored]
            return outcome
        except Exception:  # a deadlock: the events are still stored below, for a worker to apply
            logger.exception("%s: applying %d events failed; storing them for a worker", providers, len(items))
    elif budget > 0:
        deadline = time.monotonic() + budget
        try:
            with transaction.atomic():
                stored = events_insert(items, applied_at=timezone.now())
                leftover = effects_apply_grouped(stored, deadline=deadline)
                if leftover:
                    DeliveryEvent.objects.filter(pk__in=leftover).update(applied_at=None)
            outcome.stored = stored
            outcome.deferred = list(leftover)
            outcome.applied = [i.pk for i in stored if i.pk not in set(leftover)]
            return outcome
        except Exception:  # a deadlock, a rule's bug: the events are still stored, for a worker to apply
            logger.exception("%s: applying %d events failed; storing them for a worker", providers, len(items))
    with transaction.atomic():
        stored = events_insert(items, applied_at=None)
    outcome.stored = stored
    outcome.deferred = [item.pk for item in stored]
    return outcome

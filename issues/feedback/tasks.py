"""Celery work for the feedback loop: effects a webhook request had no time for, and lost ones.

The names are those the tasks had before the feedback loop had a package of
its own, so tasks already queued still run after an upgrade.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

log = logging.getLogger(__name__)


@shared_task(name="issues.feedback_tasks.feedback_events_apply", acks_late=True)
def feedback_events_apply(event_ids: list[int]) -> None:
    """Apply the stored events' effects (each once, so a redelivered task is harmless)."""
    from issues.feedback.rules import events_apply

    events_apply(event_ids=event_ids)


@shared_task(name="issues.feedback_tasks.feedback_events_drain", ignore_result=True)
def feedback_events_drain(slot: int = 0) -> int:
    """Store and apply the provider events waiting in Redis."""
    from issues.feedback.pending import events_drain

    return events_drain(slot=slot)


@shared_task(name="issues.feedback_tasks.sweep_unapplied_events", ignore_result=True)
def sweep_unapplied_events() -> int:
    """Store events left waiting in Redis; queue again the events stored long ago and never applied (run by beat)."""
    from issues.feedback.pending import events_drain
    from issues.feedback.rules import events_queue, events_unapplied

    events_drain()

    event_ids = events_unapplied(older_than=settings.FEEDBACK_SWEEP_AFTER)
    if event_ids:
        log.warning("%d provider events were stored but never applied; queueing them again", len(event_ids))
        events_queue(event_ids=event_ids)
    return len(event_ids)

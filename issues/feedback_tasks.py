"""Celery work for the feedback loop: effects a webhook request had no time for, and lost ones."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from issues.feedback import events_apply, events_unapplied

log = logging.getLogger(__name__)

QUEUE_CHUNK = 500  # events per task


@shared_task(name="issues.feedback_tasks.feedback_events_apply", acks_late=True)
def feedback_events_apply(event_ids: list[int]) -> None:
    """Apply the stored events' effects (each once, so a redelivered task is harmless)."""
    events_apply(event_ids=event_ids)


def feedback_events_queue(event_ids: list[int]) -> None:
    """Queue the events' effects to workers, QUEUE_CHUNK events per task."""
    for start in range(0, len(event_ids), QUEUE_CHUNK):
        feedback_events_apply.delay(event_ids[start : start + QUEUE_CHUNK])


@shared_task(ignore_result=True)
def sweep_unapplied_events() -> int:
    """Queue again the events stored long ago whose effects were never applied (run by beat)."""
    event_ids = events_unapplied(older_than=settings.FEEDBACK_SWEEP_AFTER)
    if event_ids:
        log.warning("%d provider events were stored but never applied; queueing them again", len(event_ids))
        feedback_events_queue(event_ids)
    return len(event_ids)

"""Celery work for the feedback loop: effects a webhook request had no time for."""

from __future__ import annotations

from celery import shared_task

from issues.feedback import events_apply


@shared_task(name="issues.feedback_tasks.feedback_events_apply", acks_late=True)
def feedback_events_apply(event_ids: list[int]) -> None:
    """Apply the stored events' effects (idempotent, so a redelivered task is harmless)."""
    events_apply(event_ids=event_ids)

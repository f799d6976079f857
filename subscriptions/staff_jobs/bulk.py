"""A bulk action run: erase, unsubscribe or resend confirmations to many readers, a batch at a time."""

from __future__ import annotations

import time

from subscriptions.confirmation import confirmation_mails_queue
from subscriptions.erasure import subscribers_erase
from subscriptions.models import StaffJob, Subscription
from subscriptions.staff_jobs.services import staff_job_finish, staff_job_progress
from subscriptions.unsubscribing import subscribers_unsubscribe_all

BULK_BATCH = 1000


def _batch_apply(kind: str, subscriber_ids: list[int]) -> int:
    """Apply the action to one batch of readers; return how many it changed."""
    if kind == StaffJob.Kind.ERASE:
        return subscribers_erase(subscriber_ids=subscriber_ids)
    if kind == StaffJob.Kind.UNSUBSCRIBE:
        return subscribers_unsubscribe_all(subscriber_ids=subscriber_ids, source=Subscription.UnsubscribeSource.ADMIN)
    pending = list(
        Subscription.objects.filter(subscriber_id__in=subscriber_ids, status=Subscription.Status.PENDING)
        .values_list("subscriber_id", flat=True)
        .distinct()
        .order_by("subscriber_id")
    )
    confirmation_mails_queue(subscriber_ids=pending)  # one task for the batch, not one per reader
    return len(pending)


def bulk_run(*, job: StaffJob, max_seconds: float | None = None) -> bool:
    """Work through the job's readers from where it stopped; return True if time ran out first."""
    started = time.monotonic()
    ids = job.subscriber_ids
    position = job.processed
    while position < len(ids):
        batch = ids[position : position + BULK_BATCH]
        changed = _batch_apply(job.kind, batch)
        position += len(batch)
        if not staff_job_progress(job=job, processed=position, changed=changed):
            return False  # given up on and started again elsewhere
        if max_seconds is not None and time.monotonic() - started > max_seconds and position < len(ids):
            return True
    staff_job_finish(job=job)
    return False

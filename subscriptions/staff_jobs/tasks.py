"""Celery tasks that run staff jobs (names fixed: queued tasks survive an upgrade)."""

from __future__ import annotations

import logging

from celery import shared_task

log = logging.getLogger(__name__)

# Each task works for at most this long, then queues its continuation.
RUN_SECONDS = 120


@shared_task(name="subscriptions.staff_jobs.staff_job_run", ignore_result=True)
def staff_job_run(job_id: int) -> None:
    """Run (or continue) the staff job; queue the rest if its time ran out.

    Not acknowledged late: if the worker dies, the job stops moving and is
    reported failed, for an admin to start again, rather than run twice.
    """
    from subscriptions.staff_jobs.run import staff_job_run_once

    if staff_job_run_once(job_id=job_id, max_seconds=RUN_SECONDS):
        staff_job_run.delay(job_id)


@shared_task(name="subscriptions.staff_jobs.fail_stalled_staff_jobs", ignore_result=True)
def fail_stalled_staff_jobs() -> list[int]:
    """Report failed the jobs whose worker went away (run by beat)."""
    from subscriptions.staff_jobs.services import staff_jobs_stalled_fail

    job_ids = staff_jobs_stalled_fail()
    for job_id in job_ids:
        log.warning("staff job %s stopped moving; marked failed", job_id)
    return job_ids

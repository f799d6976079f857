"""The Celery task that runs a CSV import."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

log = logging.getLogger(__name__)

# Each task imports for at most this long, then queues its continuation, so
# it stays well inside the task time limits and the broker's visibility
# timeout.
IMPORT_TASK_SECONDS = 120


@shared_task(name="subscriptions.import_tasks.import_job_process", acks_late=True, reject_on_worker_lost=True)
def import_job_process(job_id: int) -> None:
    """Import the job's file from where it stopped; queue the rest if time ran out."""
    from subscriptions.imports.jobs import import_job_run

    job = import_job_run(job_id=job_id, max_seconds=IMPORT_TASK_SECONDS)
    if job.unfinished:
        import_job_process.delay(job_id)


@shared_task(name="subscriptions.import_tasks.resume_stalled_imports", ignore_result=True)
def resume_stalled_imports() -> list[int]:
    """Queue again the imports that stopped moving: where they stopped, nothing twice (run by beat)."""
    from subscriptions.imports.jobs import imports_stalled_claim

    job_ids = imports_stalled_claim(older_than=settings.IMPORT_STALL_SECONDS)
    for job_id in job_ids:
        log.warning("import %s stopped moving; continuing it where it stopped", job_id)
        import_job_process.delay(job_id)
    return job_ids

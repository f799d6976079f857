"""Run a staff job once: take it, do its kind of work, record how it ended."""

from __future__ import annotations

import logging

from subscriptions.models import StaffJob
from subscriptions.staff_jobs.bulk import bulk_run
from subscriptions.staff_jobs.export import export_run
from subscriptions.staff_jobs.services import staff_job_fail, staff_job_take

log = logging.getLogger(__name__)


def staff_job_run_once(*, job_id: int, max_seconds: float | None = None) -> bool:
    """Run the job for up to max_seconds; return True if it has work left for another run."""
    job = staff_job_take(job_id=job_id)
    if job is None:
        return False
    try:
        if job.kind == StaffJob.Kind.EXPORT:
            export_run(job=job)
            return False
        return bulk_run(job=job, max_seconds=max_seconds)
    except Exception as exc:
        log.exception("staff job %s failed", job_id)
        staff_job_fail(
            job=job, error=f"The job failed: {exc.__class__.__name__}. Start it again; if it fails again, see the logs."
        )
        raise

"""Staff jobs: start one, let one run take it, report it, fail it when its worker went away, start it again.

A run takes a job with a conditional update that sets a fresh run token;
it records progress and its end only while the job still carries that
token, so a run that was given up on (and restarted) can never overwrite
the new run's work.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from dwvlist.celery import task_queue
from subscriptions.models import MailingList, StaffJob

BULK_MAX_READERS = 1_000_000
_RUN_TASK = "subscriptions.staff_jobs.staff_job_run"


def staff_job_export_create(*, mailing_list: MailingList | None, status: str, user) -> StaffJob:
    """Queue an export of the subscriptions (filtered by list and status); return the job."""
    job = StaffJob.objects.create(
        kind=StaffJob.Kind.EXPORT, mailing_list=mailing_list, subscription_status=status or "", created_by=user
    )
    transaction.on_commit(lambda: task_queue(_RUN_TASK, job.pk))
    return job


def staff_job_bulk_create(*, kind: str, subscriber_ids: list[int], user) -> StaffJob:
    """Queue a bulk action (erase, unsubscribe, resend) on these readers; return the job."""
    if kind not in (StaffJob.Kind.ERASE, StaffJob.Kind.UNSUBSCRIBE, StaffJob.Kind.RESEND):
        raise ValueError(f"not a bulk action: {kind}")
    ids = sorted(set(subscriber_ids))[:BULK_MAX_READERS]
    job = StaffJob.objects.create(kind=kind, subscriber_ids=ids, total=len(ids), created_by=user)
    transaction.on_commit(lambda: task_queue(_RUN_TASK, job.pk))
    return job


def staff_job_take(*, job_id: int) -> StaffJob | None:
    """Take a queued or running job for this run (a fresh token); None if it is over or gone."""
    token = uuid.uuid4().hex
    now = timezone.now()
    taken = StaffJob.objects.filter(pk=job_id, status__in=[StaffJob.Status.QUEUED, StaffJob.Status.RUNNING]).update(
        status=StaffJob.Status.RUNNING, run_token=token, started_at=Coalesce(F("started_at"), now), progressed_at=now
    )
    return StaffJob.objects.get(pk=job_id) if taken else None


def staff_job_progress(*, job: StaffJob, processed: int, changed: int = 0, total: int | None = None) -> bool:
    """Record the run's progress; return False if the job is no longer this run's (stop then)."""
    fields = {"processed": processed, "changed": F("changed") + changed, "progressed_at": timezone.now()}
    if total is not None:
        fields["total"] = total
    return (
        StaffJob.objects.filter(pk=job.pk, run_token=job.run_token, status=StaffJob.Status.RUNNING).update(**fields)
        == 1
    )


def staff_job_finish(*, job: StaffJob, **fields) -> bool:
    """Mark this run's job done with the given fields; return False if it is no longer this run's."""
    return (
        StaffJob.objects.filter(pk=job.pk, run_token=job.run_token, status=StaffJob.Status.RUNNING).update(
            status=StaffJob.Status.DONE, finished_at=timezone.now(), progressed_at=timezone.now(), **fields
        )
        == 1
    )


def staff_job_fail(*, job: StaffJob, error: str) -> None:
    """Mark this run's job failed, saying why."""
    StaffJob.objects.filter(pk=job.pk, run_token=job.run_token, status=StaffJob.Status.RUNNING).update(
        status=StaffJob.Status.FAILED, error=error[:2000], finished_at=timezone.now()
    )


def staff_jobs_stalled_fail(*, older_than: float | None = None) -> list[int]:
    """Mark failed the jobs with no sign of life for STAFF_JOB_STALL_SECONDS (their worker went away)."""
    seconds = settings.STAFF_JOB_STALL_SECONDS if older_than is None else older_than
    cutoff = timezone.now() - timedelta(seconds=seconds)
    stalled = StaffJob.objects.filter(status__in=[StaffJob.Status.QUEUED, StaffJob.Status.RUNNING]).filter(
        Q(progressed_at__lt=cutoff) | Q(progressed_at__isnull=True, created_at__lt=cutoff)
    )
    job_ids = list(stalled.values_list("pk", flat=True))
    StaffJob.objects.filter(pk__in=job_ids, status__in=[StaffJob.Status.QUEUED, StaffJob.Status.RUNNING]).update(
        status=StaffJob.Status.FAILED,
        error="The job stopped: its worker went away before it finished. Nothing half-done is offered; start it again.",
        finished_at=timezone.now(),
        run_token="",
    )
    return job_ids


def staff_job_restart(*, job: StaffJob) -> bool:
    """Queue a failed job again from the start (a bulk action skips readers already done); return True if queued."""
    restarted = StaffJob.objects.filter(pk=job.pk, status=StaffJob.Status.FAILED).update(
        status=StaffJob.Status.QUEUED,
        run_token="",
        error="",
        finished_at=None,
        progressed_at=timezone.now(),
        processed=0 if job.kind == StaffJob.Kind.EXPORT else F("processed"),
    )
    if restarted:
        transaction.on_commit(lambda: task_queue(_RUN_TASK, job.pk))
    return restarted == 1


def staff_job_report(*, job: StaffJob) -> dict:
    """Return the job's progress and outcome, for its page and the page's script."""
    return {
        "kind": job.kind,
        "status": job.status,
        "status_display": job.get_status_display(),
        "percent": job.percent,
        "total": job.total,
        "processed": job.processed,
        "changed": job.changed,
        "error": job.error,
        "file_name": job.file_name,
        "file_size": job.file_size,
        "sha256": job.sha256,
        "done": job.status == StaffJob.Status.DONE,
    }

"""An export run: the subscriptions as CSV, written in constant memory, kept whole or not at all."""

from __future__ import annotations

import csv
import hashlib
import tempfile
from pathlib import Path

from django.utils import timezone

from subscriptions.exports import subscriber_rows
from subscriptions.files import file_delete, file_store
from subscriptions.models import StaffJob, Subscription
from subscriptions.staff_jobs.services import staff_job_finish, staff_job_progress

PROGRESS_EVERY_ROWS = 10_000


def export_file_name(job: StaffJob) -> str:
    """Return the name the download is saved under: what was exported, and when."""
    stamp = timezone.localtime(job.created_at).strftime("%Y%m%d-%H%M")
    what = job.mailing_list.slug if job.mailing_list else "all"
    status = f"-{job.subscription_status}" if job.subscription_status else ""
    return f"subscribers-{what}{status}-{stamp}.csv"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for piece in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(piece)
    return digest.hexdigest()


def export_run(*, job: StaffJob) -> None:
    """Write the job's CSV to a local file, keep it in the file storage, and only then offer it.

    The row count and SHA-256 recorded with it let whoever downloads it
    check the file is whole.
    """
    subscriptions = Subscription.objects.all()
    if job.mailing_list_id:
        subscriptions = subscriptions.filter(mailing_list_id=job.mailing_list_id)
    if job.subscription_status:
        subscriptions = subscriptions.filter(status=job.subscription_status)
    staff_job_progress(job=job, processed=0, total=subscriptions.count())
    rows = -1  # the header line is not a row
    with tempfile.TemporaryDirectory(prefix="dwvlist-export-") as folder:
        path = Path(folder) / "export.csv"
        with open(path, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            for row in subscriber_rows(list_id=job.mailing_list_id, status=job.subscription_status or None):
                writer.writerow(row)
                rows += 1
                if rows and rows % PROGRESS_EVERY_ROWS == 0 and not staff_job_progress(job=job, processed=rows):
                    return  # given up on and started again: the new run writes the file
        sha256, size = _sha256(path), path.stat().st_size
        stored_name = file_store(source=path, prefix="exports")
    finished = staff_job_finish(
        job=job,
        stored_name=stored_name,
        file_name=export_file_name(job),
        file_size=size,
        sha256=sha256,
        processed=rows,
        total=rows,
    )
    if not finished:
        file_delete(stored_name)

"""Import subscribers from a CSV file.

The file is read in chunks; each chunk's rows and the job's progress commit
in one transaction, so a crashed import resumes after the last committed
chunk and never inserts a row twice. The progress update is conditional on
the row count it started from, so two workers handed the same job cannot
both write a chunk. On PostgreSQL a chunk goes in with COPY into a
temporary table and set-based INSERT ... SELECT ... ON CONFLICT DO NOTHING;
elsewhere with bulk_create.
"""

from __future__ import annotations

import contextlib
import csv
import logging
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from dwvlist.audit.models import AuditEntry
from dwvlist.audit.services import audit_record
from subscriptions.confirmation import confirmation_mails_queue
from subscriptions.files import file_delete, file_local_copy, file_store
from subscriptions.imports.parsing import _column_index, _open
from subscriptions.imports.writing import _chunks_write, _Superseded
from subscriptions.models import (
    ImportJob,
    MailingList,
    Subscription,
)

log = logging.getLogger(__name__)

IMPORT_MAX_BYTES = 100 * 1024 * 1024
IMPORT_MAX_ROWS = 1_000_000
IMPORT_CHUNK_ROWS = 50_000
EMAIL_COLUMN_GUESSES = ["email", "e-mail", "email address", "e-mail address", "mail", "address"]


def import_header_read(*, path: str | Path) -> list[str]:
    """Return the file's column names, or raise ValidationError if it has none."""
    with _open(path) as handle:
        try:
            header = next(csv.reader(handle), None)
        except csv.Error as exc:
            raise ValidationError(f"The first line is not valid CSV: {exc}") from None
    if not header or not any(cell.strip() for cell in header):
        raise ValidationError("The file is empty or has no header line naming its columns.")
    return [cell.strip() for cell in header]


def import_columns_guess(*, header: list[str]) -> dict[str, str]:
    """Return likely email, name and lists column names for a header."""
    lowered = {cell.lower(): cell for cell in header}
    email = next((lowered[g] for g in EMAIL_COLUMN_GUESSES if g in lowered), "")
    name = next((lowered[g] for g in ("name", "full name", "first name") if g in lowered), "")
    lists = next((lowered[g] for g in ("lists", "list") if g in lowered), "")
    return {"email": email, "name": name, "lists": lists}


def import_job_create(
    *,
    source: str | Path,
    file_name: str,
    mailing_list: MailingList,
    consent: str,
    email_column: str = "",
    name_column: str = "",
    lists_column: str = "",
    created_by=None,
    copy: bool = True,
) -> ImportJob:
    """Check the file's size and columns, keep a copy in the file storage, and return a queued job.

    Every worker reads the stored copy, on any host. With copy=False the job
    reads the local file where it is (the management command runs the
    import itself) and leaves it there afterwards.
    """
    if consent not in ImportJob.Consent.values:
        raise ValidationError("Choose whether consent was already given or a confirmation must be sent.")
    source = Path(source)
    size = source.stat().st_size
    if size > IMPORT_MAX_BYTES:
        raise ValidationError(f"The file is {size / 1024 / 1024:.0f} MB; at most 100 MB can be imported at once.")
    header = import_header_read(path=source)
    if not email_column:
        email_column = import_columns_guess(header=header)["email"]
        if not email_column:
            raise ValidationError(
                f"Name the column that holds the addresses. The file's columns are: {', '.join(header)}."
            )
    _column_index(header, email_column, label="email")
    if name_column:
        _column_index(header, name_column, label="name")
    if lists_column:
        _column_index(header, lists_column, label="lists")
    stored_name = file_store(source=source, prefix="imports") if copy else ""
    job = ImportJob.objects.create(
        mailing_list=mailing_list,
        created_by=created_by,
        file_name=Path(file_name).name[:255],
        file_path="" if copy else str(source.resolve()),
        stored_name=stored_name,
        file_size=size,
        consent=consent,
        email_column=email_column,
        name_column=name_column,
        lists_column=lists_column,
    )
    summary = f"{job.file_name} ({size} bytes) into {mailing_list.slug}, consent: {consent}"
    audit_record(action=AuditEntry.Action.IMPORT_STARTED, object_id=job.pk, summary=summary, user=created_by)
    log.info("import queued: %s", summary, extra={"import_id": job.pk, "list": mailing_list.slug})
    return job


def _rows_count(path: str) -> int:
    with _open(path) as handle:
        reader = csv.reader(handle)
        count = -1  # the header
        while True:
            try:
                next(reader)
            except StopIteration:
                return max(count, 0)
            except csv.Error:
                pass
            count += 1


def _job_fail(job: ImportJob, message: str) -> ImportJob:
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportJob.Status.FAILED, error=message[:2000], finished_at=timezone.now()
    )
    log.warning("import failed: %s", message, extra={"import_id": job.pk})
    job.refresh_from_db()
    return job


def import_job_run(*, job_id: int, max_seconds: float | None = None, chunk_rows: int = IMPORT_CHUNK_ROWS) -> ImportJob:
    """Import the job's file from where it stopped; return the job.

    With max_seconds, stop after the chunk that passes that time and leave
    the job running with `job.unfinished` set, for the caller to continue it
    (a task re-queues itself, so no single task outlives its time limit).
    A run that finds another worker ahead of it stops without that flag.
    """
    claimed = ImportJob.objects.filter(
        pk=job_id, status__in=[ImportJob.Status.QUEUED, ImportJob.Status.RUNNING]
    ).update(
        status=ImportJob.Status.RUNNING,
        started_at=Coalesce(F("started_at"), timezone.now()),
        progressed_at=timezone.now(),
    )
    job = ImportJob.objects.select_related("mailing_list").get(pk=job_id)
    job.unfinished = False
    if not claimed:
        return job
    try:
        with _job_file(job) as path:
            job.local_path = path
            return _job_continue(job, max_seconds=max_seconds, chunk_rows=chunk_rows)
    except FileNotFoundError:
        return _job_fail(job, "The uploaded file is gone; upload it again.")


@contextlib.contextmanager
def _job_file(job: ImportJob):
    """Yield a local path to the job's file: a copy of the stored upload, or the local file itself."""
    if job.stored_name:
        with file_local_copy(job.stored_name) as path:
            yield path
    elif Path(job.file_path).is_file():
        yield Path(job.file_path)
    else:
        raise FileNotFoundError(job.file_path)


def _job_continue(job: ImportJob, *, max_seconds: float | None, chunk_rows: int) -> ImportJob:
    if job.total_rows is None:
        total = _rows_count(job.local_path)
        if total > IMPORT_MAX_ROWS:
            return _job_fail(job, f"The file has {total:,} rows; at most {IMPORT_MAX_ROWS:,} can be imported at once.")
        ImportJob.objects.filter(pk=job.pk).update(total_rows=total)
        job.total_rows = total
    try:
        if not _chunks_write(job, chunk_rows=chunk_rows, max_seconds=max_seconds):
            job.refresh_from_db()
            job.unfinished = job.processed_rows < (job.total_rows or 0)
            return job
    except _Superseded:
        job.refresh_from_db()
        return job
    except ValidationError as exc:
        return _job_fail(job, exc.messages[0])
    queued = import_confirmations_queue(job=job)
    ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.RUNNING).update(
        status=ImportJob.Status.DONE,
        finished_at=timezone.now(),
        confirmations_queued=F("confirmations_queued") + queued,
    )
    _file_discard(job)
    job.refresh_from_db()
    log.info(
        "import finished: %d rows, %d imported, %d already there, %d unsubscribed or suppressed, %d bad",
        job.processed_rows,
        job.imported_count,
        job.existing_count,
        job.unsubscribed_count + job.suppressed_count,
        job.bad_count,
        extra={"import_id": job.pk, "list": job.mailing_list.slug, "confirmations": job.confirmations_queued},
    )
    return job


def imports_stalled_claim(*, older_than: float) -> list[int]:
    """Return the imports, queued or running, with no sign of life for `older_than` seconds; mark them seen.

    Their worker died or their queued task was lost with the broker. Marking
    them keeps the next round from queueing them again before a worker takes
    them; a second task for a live import stops at its first chunk (_Superseded).
    """
    now = timezone.now()
    stalled = ImportJob.objects.filter(status__in=[ImportJob.Status.QUEUED, ImportJob.Status.RUNNING]).alias(
        seen=Coalesce("progressed_at", "created_at")
    )
    job_ids = list(stalled.filter(seen__lt=now - timedelta(seconds=older_than)).values_list("pk", flat=True))
    ImportJob.objects.filter(pk__in=job_ids).update(progressed_at=now)
    return job_ids


def import_job_stalled(*, job: ImportJob, after_seconds: float) -> bool:
    """Return whether the import is queued or running yet has shown no sign of life for after_seconds."""
    if job.status not in (ImportJob.Status.QUEUED, ImportJob.Status.RUNNING):
        return False
    seen = job.progressed_at or job.created_at
    return seen < timezone.now() - timedelta(seconds=after_seconds)


def _file_discard(job: ImportJob) -> None:
    """Delete the job's stored copy of the upload; leave a local file the job did not copy."""
    file_delete(job.stored_name)


def import_confirmations_queue(*, job: ImportJob) -> int:
    """Queue a confirmation mail for each reader the job left pending; return how many.

    One mail per reader: it confirms all their pending lists at once.
    """
    if job.consent != ImportJob.Consent.CONFIRM:
        return 0
    subscriber_ids = (
        Subscription.objects.filter(
            status=Subscription.Status.PENDING,
            consent_source=Subscription.ConsentSource.IMPORT,
            consent_detail=job.consent_detail,
        )
        .values_list("subscriber_id", flat=True)
        .distinct()
        .order_by("subscriber_id")
    )
    ids = list(subscriber_ids)
    confirmation_mails_queue(subscriber_ids=ids)
    return len(ids)

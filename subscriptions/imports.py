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
import multiprocessing
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Coalesce, Lower
from django.utils import timezone

from subscriptions.addresses import email_hash, email_normalize
from subscriptions.models import (
    NAME_MAX_LENGTH,
    ImportJob,
    ImportRowError,
    MailingList,
    Subscriber,
    Subscription,
    Suppression,
)

IMPORT_MAX_BYTES = 100 * 1024 * 1024
IMPORT_MAX_ROWS = 1_000_000
IMPORT_CHUNK_ROWS = 50_000
IMPORT_PROCESSES = 4  # at most; never more than the machine's cores
IMPORT_POOL_MIN_ROWS = 100_000  # smaller files validate faster than a pool starts
EMAIL_COLUMN_GUESSES = ["email", "e-mail", "email address", "e-mail address", "mail", "address"]
_LIST_SEPARATORS = re.compile(r"[;,|\s]+")
_IN_BATCH = 500  # stays under SQLite's limit on query parameters


def import_dir() -> Path:
    """Return the directory where uploaded files wait to be imported.

    Every worker must see it: a shared VAR_DIR when workers run on several machines.
    """
    path = Path(settings.VAR_DIR) / "imports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _open(path: str | Path):
    # utf-8-sig drops a spreadsheet's byte-order mark; undecodable bytes turn
    # into U+FFFD so that row fails validation instead of the whole file.
    return open(path, encoding="utf-8-sig", errors="replace", newline="")


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


def _column_index(header: list[str], name: str, *, label: str) -> int:
    wanted = name.strip().lower()
    for index, cell in enumerate(header):
        if cell.lower() == wanted:
            return index
    raise ValidationError(f"The file has no {label} column named “{name}”. Its columns are: {', '.join(header)}.")


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
    """Check the file's size and columns, keep a copy, and return a queued job.

    With copy=False the job reads the file where it is (the management
    command's own file) and leaves it there afterwards.
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
    if copy:
        path = import_dir() / f"import-{uuid.uuid4().hex}.csv"
        shutil.copyfile(source, path)
    else:
        path = source.resolve()
    return ImportJob.objects.create(
        mailing_list=mailing_list,
        created_by=created_by,
        file_name=Path(file_name).name[:255],
        file_path=str(path),
        file_size=size,
        consent=consent,
        email_column=email_column,
        name_column=name_column,
        lists_column=lists_column,
    )


@dataclass
class _Row:
    email: str
    key: str
    name: str
    hash: str
    list_ids: list[int]


@dataclass
class _Chunk:
    start: int  # data rows handled before this chunk
    end: int = 0
    rows: list[_Row] = field(default_factory=list)
    errors: list[ImportRowError] = field(default_factory=list)
    duplicates: int = 0


@dataclass
class _Counts:
    new_subscribers: int = 0
    imported: int = 0
    existing: int = 0
    unsubscribed: int = 0
    suppressed: int = 0


class _Superseded(Exception):
    """Another worker committed progress on this job first."""


def _address_check(raw: str) -> tuple[str, str, str]:
    """Return (address, its suppression hash, "") or ("", "", why it is invalid)."""
    try:
        email = email_normalize(raw)
    except ValidationError as exc:
        return "", "", exc.messages[0]
    return email, email_hash(email), ""


def _addresses_check(raws: list[str], pool) -> list[tuple[str, str, str]]:
    if pool is None:
        return [_address_check(raw) for raw in raws]
    return pool.map(_address_check, raws, chunksize=5000)


def _chunks(job: ImportJob, *, chunk_rows: int, pool=None) -> Iterator[_Chunk]:
    """Yield the file's not yet processed data rows, validated, in chunks.

    Addresses are validated in bulk per chunk, by the pool's processes if
    one is given: validation is most of an import's CPU time.
    """
    lists_by_slug = {slug.lower(): pk for slug, pk in MailingList.objects.values_list("slug", "pk")}
    seen: set[int] = set()
    with _open(job.file_path) as handle:
        reader = csv.reader(handle)
        header = [cell.strip() for cell in next(reader)]
        email_at = _column_index(header, job.email_column, label="email")
        name_at = _column_index(header, job.name_column, label="name") if job.name_column else None
        lists_at = _column_index(header, job.lists_column, label="lists") if job.lists_column else None
        columns = (email_at, name_at, lists_at)
        done = 0
        batch: list[tuple[int, list[str] | Exception]] = []

        def chunk_of(batch, start: int, end: int) -> _Chunk:
            chunk = _Chunk(start=start, end=end)
            raws = [cells[email_at] if isinstance(cells, list) and len(cells) > email_at else "" for _, cells in batch]
            for (row_number, cells), checked in zip(batch, _addresses_check(raws, pool), strict=True):
                _row_check(
                    chunk=chunk,
                    cells=cells,
                    checked=checked,
                    row_number=row_number,
                    job=job,
                    columns=columns,
                    lists_by_slug=lists_by_slug,
                    seen=seen,
                )
            return chunk

        start = job.processed_rows
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                cells = exc
            done += 1
            if done <= job.processed_rows:
                # Already imported before a crash: only remember its address
                # so later repeats still count as duplicates.
                if isinstance(cells, list) and len(cells) > email_at:
                    seen.add(hash(cells[email_at].strip().lower()))
                continue
            batch.append((done + 1, cells))  # row numbers as a spreadsheet shows them, the header being 1
            if len(batch) >= chunk_rows:
                yield chunk_of(batch, start, done)
                batch, start = [], done
        if batch:
            yield chunk_of(batch, start, done)


def _row_check(*, chunk, cells, checked, row_number, job, columns, lists_by_slug, seen) -> None:
    """Validate one row and add it to the chunk as a row to write, an error or a duplicate."""
    email_at, name_at, lists_at = columns

    def bad(reason: str, value: str = "") -> None:
        chunk.errors.append(ImportRowError(job=job, row_number=row_number, value=value[:300], reason=reason[:300]))

    if isinstance(cells, Exception):
        bad(f"The line is not valid CSV: {cells}")
        return
    if not any(cell.strip() for cell in cells):
        bad("The row is empty.")
        return
    if len(cells) <= email_at:
        bad("The row has no value in the email column.")
        return
    raw = cells[email_at]
    if "\ufffd" in raw or (name_at is not None and len(cells) > name_at and "\ufffd" in cells[name_at]):
        bad("The row is not valid UTF-8; save the file as CSV UTF-8.", raw)
        return
    email, address_hash, invalid = checked
    if invalid:
        bad(invalid, raw)
        return
    name = cells[name_at].strip() if name_at is not None and len(cells) > name_at else ""
    if "\r" in name or "\n" in name or "\x00" in name:
        bad("The name cannot contain line breaks.", raw)
        return
    if len(name) > NAME_MAX_LENGTH:
        bad(f"The name is longer than {NAME_MAX_LENGTH} characters.", raw)
        return
    list_ids = [job.mailing_list_id]
    if lists_at is not None and len(cells) > lists_at and cells[lists_at].strip():
        slugs = [slug for slug in _LIST_SEPARATORS.split(cells[lists_at].strip().lower()) if slug]
        unknown = [slug for slug in slugs if slug not in lists_by_slug]
        if unknown:
            bad(f"No list has the slug {', '.join(unknown)}.", raw)
            return
        list_ids = list(dict.fromkeys(lists_by_slug[slug] for slug in slugs))
    key = email.lower()
    fingerprint = hash(key)
    if fingerprint in seen:
        chunk.duplicates += 1
        return
    seen.add(fingerprint)
    seen.add(hash(raw.strip().lower()))
    chunk.rows.append(_Row(email=email, key=key, name=name, hash=address_hash, list_ids=list_ids))


def _suppressed_hashes(hashes: list[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(hashes), _IN_BATCH):
        batch = hashes[i : i + _IN_BATCH]
        found.update(Suppression.objects.filter(email_hash__in=batch).values_list("email_hash", flat=True))
    return found


def _subscription_fields(job: ImportJob, now) -> dict:
    given = job.consent == ImportJob.Consent.GIVEN
    return {
        "status": Subscription.Status.ACTIVE if given else Subscription.Status.PENDING,
        "consent_source": Subscription.ConsentSource.IMPORT,
        "consented_at": now,
        "consent_detail": job.consent_detail,
        "confirmed_at": now if given else None,
    }


def _chunk_write_orm(job: ImportJob, rows: list[_Row], counts: _Counts) -> None:
    """Write a chunk with the ORM: bulk_create with ignore_conflicts, in bounded batches."""
    now = timezone.now()
    by_key = {row.key: row for row in rows}
    keys = list(by_key)
    ids: dict[str, int] = {}
    for i in range(0, len(keys), _IN_BATCH):
        batch = keys[i : i + _IN_BATCH]
        for pk, email in (
            Subscriber.objects.annotate(key=Lower("email")).filter(key__in=batch).values_list("pk", "email")
        ):
            ids[email.lower()] = pk
    missing = [by_key[key] for key in keys if key not in ids]
    Subscriber.objects.bulk_create(
        [Subscriber(email=row.email, name=row.name, created_at=now) for row in missing],
        ignore_conflicts=True,
        batch_size=_IN_BATCH,
    )
    counts.new_subscribers += len(missing)
    missing_emails = [row.email for row in missing]
    for i in range(0, len(missing_emails), _IN_BATCH):
        batch = missing_emails[i : i + _IN_BATCH]
        for pk, email in Subscriber.objects.filter(email__in=batch).values_list("pk", "email"):
            ids[email.lower()] = pk
    pairs = [(ids[row.key], list_id) for row in rows if row.key in ids for list_id in row.list_ids]
    subscriber_ids = list({pk for pk, _ in pairs})
    status_of: dict[tuple[int, int], str] = {}
    for i in range(0, len(subscriber_ids), _IN_BATCH):
        batch = subscriber_ids[i : i + _IN_BATCH]
        for pk, list_id, status in Subscription.objects.filter(subscriber_id__in=batch).values_list(
            "subscriber_id", "mailing_list_id", "status"
        ):
            status_of[(pk, list_id)] = status
    fields = _subscription_fields(job, now)
    new = []
    for pair in pairs:
        status = status_of.get(pair)
        if status is None:
            new.append(Subscription(subscriber_id=pair[0], mailing_list_id=pair[1], created_at=now, **fields))
        elif status == Subscription.Status.UNSUBSCRIBED:
            counts.unsubscribed += 1
        else:
            counts.existing += 1
    Subscription.objects.bulk_create(new, ignore_conflicts=True, batch_size=_IN_BATCH)
    counts.imported += len(new)


_PG_TEMP_TABLES = [
    """CREATE TEMPORARY TABLE IF NOT EXISTS dwvlist_import_rows (
        email varchar(254) NOT NULL,
        key text NOT NULL,
        name varchar(200) NOT NULL,
        email_hash varchar(64) NOT NULL,
        list_id bigint NOT NULL
    ) ON COMMIT DELETE ROWS""",
    # Each (reader, list) pair of the chunk, with the status of the
    # reader's subscription to that list if there is one.
    """CREATE TEMPORARY TABLE IF NOT EXISTS dwvlist_import_pairs (
        subscriber_id bigint NOT NULL,
        list_id bigint NOT NULL,
        status varchar(16)
    ) ON COMMIT DELETE ROWS""",
]

_PG_DROP_SUPPRESSED = """
WITH gone AS (
    DELETE FROM dwvlist_import_rows r USING subscriptions_suppression s
    WHERE s.email_hash = r.email_hash RETURNING r.key
)
SELECT count(DISTINCT key) FROM gone
"""

_PG_INSERT_SUBSCRIBERS = """
INSERT INTO subscriptions_subscriber (email, name, created_at, updated_at)
SELECT DISTINCT ON (key) email, name, %(now)s, %(now)s FROM dwvlist_import_rows ORDER BY key
ON CONFLICT DO NOTHING
"""

_PG_FILL_PAIRS = """
INSERT INTO dwvlist_import_pairs (subscriber_id, list_id, status)
SELECT DISTINCT s.id, r.list_id, sub.status
FROM dwvlist_import_rows r
JOIN subscriptions_subscriber s ON lower(s.email) = r.key
LEFT JOIN subscriptions_subscription sub ON sub.subscriber_id = s.id AND sub.mailing_list_id = r.list_id
"""

_PG_COUNT_PAIRS = """
SELECT count(*) FILTER (WHERE status = 'unsubscribed'), count(*) FILTER (WHERE status <> 'unsubscribed')
FROM dwvlist_import_pairs
"""

_PG_INSERT_SUBSCRIPTIONS = """
INSERT INTO subscriptions_subscription (
    subscriber_id, mailing_list_id, status, consent_source, consented_at, consent_detail, confirmed_at,
    unsubscribe_source, created_at, updated_at
)
SELECT subscriber_id, list_id, %(status)s, %(consent_source)s, %(now)s, %(consent_detail)s, %(confirmed_at)s,
       '', %(now)s, %(now)s
FROM dwvlist_import_pairs WHERE status IS NULL
ON CONFLICT DO NOTHING
"""


def _chunk_write_postgresql(job: ImportJob, rows: list[_Row], counts: _Counts) -> None:
    """Write a chunk with COPY into a temporary table and set-based statements."""
    now = timezone.now()
    with connection.cursor() as cursor:
        for statement in _PG_TEMP_TABLES:
            cursor.execute(statement)
        with cursor.cursor.copy("COPY dwvlist_import_rows (email, key, name, email_hash, list_id) FROM STDIN") as copy:
            for row in rows:
                for list_id in row.list_ids:
                    copy.write_row((row.email, row.key, row.name, row.hash, list_id))
        # Fresh statistics, so the joins below are planned for this chunk's size.
        cursor.execute("ANALYZE dwvlist_import_rows")
        cursor.execute(_PG_DROP_SUPPRESSED)
        counts.suppressed += cursor.fetchone()[0]
        cursor.execute(_PG_INSERT_SUBSCRIBERS, {"now": now})
        counts.new_subscribers += cursor.rowcount
        cursor.execute(_PG_FILL_PAIRS)
        cursor.execute(_PG_COUNT_PAIRS)
        unsubscribed, existing = cursor.fetchone()
        counts.unsubscribed += unsubscribed
        counts.existing += existing
        cursor.execute(_PG_INSERT_SUBSCRIPTIONS, {"now": now, **_subscription_fields(job, now)})
        counts.imported += cursor.rowcount


def _chunk_commit(job: ImportJob, chunk: _Chunk) -> None:
    """Write one chunk and advance the job's progress, all or nothing."""
    counts = _Counts()
    with transaction.atomic():
        if not chunk.rows:
            pass
        elif connection.vendor == "postgresql":
            _chunk_write_postgresql(job, chunk.rows, counts)
        else:
            suppressed = _suppressed_hashes([row.hash for row in chunk.rows])
            rows = [row for row in chunk.rows if row.hash not in suppressed]
            counts.suppressed = len(chunk.rows) - len(rows)
            if rows:
                _chunk_write_orm(job, rows, counts)
        ImportRowError.objects.bulk_create(chunk.errors, ignore_conflicts=True, batch_size=_IN_BATCH)
        updated = ImportJob.objects.filter(pk=job.pk, processed_rows=chunk.start).update(
            processed_rows=chunk.end,
            progressed_at=timezone.now(),
            new_subscribers=F("new_subscribers") + counts.new_subscribers,
            imported_count=F("imported_count") + counts.imported,
            existing_count=F("existing_count") + counts.existing,
            unsubscribed_count=F("unsubscribed_count") + counts.unsubscribed,
            suppressed_count=F("suppressed_count") + counts.suppressed,
            duplicate_count=F("duplicate_count") + chunk.duplicates,
            bad_count=F("bad_count") + len(chunk.errors),
        )
        if updated != 1:
            raise _Superseded
    job.processed_rows = chunk.end


@contextlib.contextmanager
def _validation_pool(job: ImportJob):
    """Yield a pool of processes to validate addresses, or None where one would not pay or cannot run.

    Forked children only validate strings; they never touch the database.
    A Celery prefork child may not start processes of its own: then the
    import validates in this process.
    """
    remaining = (job.total_rows or 0) - job.processed_rows
    processes = min(IMPORT_PROCESSES, os.cpu_count() or 1)
    if processes < 2 or remaining < IMPORT_POOL_MIN_ROWS:
        yield None
        return
    try:
        pool = multiprocessing.get_context("fork").Pool(processes)
    except (AssertionError, OSError, ValueError):
        yield None
        return
    try:
        yield pool
    finally:
        pool.terminate()
        pool.join()


def _chunk_commit_apart(job: ImportJob, chunk: _Chunk) -> None:
    """Commit a chunk on this thread's own connection, and close it."""
    try:
        _chunk_commit(job, chunk)
    finally:
        connection.close()


def _chunks_write(job: ImportJob, *, chunk_rows: int, max_seconds: float | None) -> bool:
    """Validate and commit the remaining chunks in order; return False if time ran out first.

    On PostgreSQL in autocommit mode, a writer thread commits one chunk while
    this one validates the next: the database and the validation (which is
    CPU-bound Python) then work at the same time. Inside a transaction (a
    caller's atomic block, a test) chunks are committed here, one by one,
    since another connection would not see that transaction's rows.
    """
    started = time.monotonic()
    overlap = connection.vendor == "postgresql" and not connection.in_atomic_block
    with _validation_pool(job) as pool:
        return _chunks_write_with(
            job=job, chunk_rows=chunk_rows, max_seconds=max_seconds, overlap=overlap, pool=pool, started=started
        )


def _chunks_write_with(
    *, job: ImportJob, chunk_rows: int, max_seconds: float | None, overlap: bool, pool, started: float
) -> bool:
    if not overlap:
        for chunk in _chunks(job, chunk_rows=chunk_rows, pool=pool):
            _chunk_commit(job, chunk)
            if max_seconds is not None and time.monotonic() - started > max_seconds:
                return False
        return True
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-writer") as writer:
        pending = None
        for chunk in _chunks(job, chunk_rows=chunk_rows, pool=pool):
            if pending is not None:
                pending.result()  # in file order, and re-raises the writer's errors
            pending = writer.submit(_chunk_commit_apart, job, chunk)
            if max_seconds is not None and time.monotonic() - started > max_seconds:
                pending.result()
                return False
        if pending is not None:
            pending.result()
    return True


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
    if not Path(job.file_path).is_file():
        return _job_fail(job, "The uploaded file is gone; upload it again.")
    if job.total_rows is None:
        total = _rows_count(job.file_path)
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


def _file_discard(job: ImportJob) -> None:
    """Delete the job's copy of the upload; leave a file the job did not copy."""
    path = Path(job.file_path)
    if path.parent == import_dir().resolve() or path.parent == import_dir():
        path.unlink(missing_ok=True)


def import_confirmations_queue(*, job: ImportJob) -> int:
    """Queue a confirmation mail for each reader the job left pending; return how many.

    One mail per reader: it confirms all their pending lists at once.
    """
    from subscriptions.tasks import confirmation_mail  # tasks import services, which may import this

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
    count = 0
    for subscriber_id in subscriber_ids.iterator(chunk_size=2000):
        transaction.on_commit(lambda pk=subscriber_id: confirmation_mail.delay(pk))
        count += 1
    return count


def import_errors_for(*, job: ImportJob):
    """Return the job's bad rows in file order."""
    return ImportRowError.objects.filter(job=job).order_by("row_number")

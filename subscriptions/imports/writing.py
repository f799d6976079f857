"""Writing checked rows: a chunk at a time, by COPY on PostgreSQL or through the ORM."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Lower
from django.utils import timezone

from subscriptions.imports.parsing import _Chunk, _chunks, _Row, _validation_pool
from subscriptions.models import (
    ImportJob,
    ImportRowError,
    Subscriber,
    Subscription,
    Suppression,
)

_IN_BATCH = 500  # stays under SQLite's limit on query parameters


@dataclass
class _Counts:
    new_subscribers: int = 0
    imported: int = 0
    existing: int = 0
    unsubscribed: int = 0
    suppressed: int = 0


class _Superseded(Exception):
    """Another worker committed progress on this job first."""


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

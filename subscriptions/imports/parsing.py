"""Reading an import file: columns, rows checked in chunks (in a pool of processes for big files)."""

from __future__ import annotations

import contextlib
import csv
import multiprocessing
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.core.exceptions import ValidationError

from subscriptions.addresses import email_hash, email_normalize
from subscriptions.models import (
    NAME_MAX_LENGTH,
    ImportJob,
    ImportRowError,
    MailingList,
)

IMPORT_PROCESSES = 4  # at most; never more than the machine's cores


IMPORT_POOL_MIN_ROWS = 100_000  # smaller files validate faster than a pool starts


_LIST_SEPARATORS = re.compile(r"[;,|\s]+")


def _open(path: str | Path):
    # utf-8-sig drops a spreadsheet's byte-order mark; undecodable bytes turn
    # into U+FFFD so that row fails validation instead of the whole file.
    return open(path, encoding="utf-8-sig", errors="replace", newline="")


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


def _column_index(header: list[str], name: str, *, label: str) -> int:
    wanted = name.strip().lower()
    for index, cell in enumerate(header):
        if cell.lower() == wanted:
            return index
    raise ValidationError(f"The file has no {label} column named “{name}”. Its columns are: {', '.join(header)}.")

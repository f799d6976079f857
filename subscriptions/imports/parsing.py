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
    with _open(job.local_path) as handle:
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


class _Rejected(Exception):
    """The row cannot be imported: why, and the value to show beside the reason."""

    def __init__(self, reason: str, value: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.value = value


def _cell(cells: list[str], at: int | None) -> str:
    return cells[at] if at is not None and len(cells) > at else ""


def _email_cell(cells, email_at: int, name_at: int | None) -> str:
    """Return the row's raw address cell; reject a line that is not CSV, empty, short or not UTF-8."""
    if isinstance(cells, Exception):
        raise _Rejected(f"The line is not valid CSV: {cells}")
    if not any(cell.strip() for cell in cells):
        raise _Rejected("The row is empty.")
    if len(cells) <= email_at:
        raise _Rejected("The row has no value in the email column.")
    raw = cells[email_at]
    if "\ufffd" in raw or "\ufffd" in _cell(cells, name_at):
        raise _Rejected("The row is not valid UTF-8; save the file as CSV UTF-8.", raw)
    return raw


def _name_cell(cells: list[str], name_at: int | None, raw: str) -> str:
    """Return the row's name; reject one with line breaks or over the length limit."""
    name = _cell(cells, name_at).strip()
    if "\r" in name or "\n" in name or "\x00" in name:
        raise _Rejected("The name cannot contain line breaks.", raw)
    if len(name) > NAME_MAX_LENGTH:
        raise _Rejected(f"The name is longer than {NAME_MAX_LENGTH} characters.", raw)
    return name


def _list_ids(cells: list[str], lists_at: int | None, *, default: int, lists_by_slug: dict, raw: str) -> list[int]:
    """Return the ids of the lists the row names (the job's list when it names none); reject unknown slugs."""
    text = _cell(cells, lists_at).strip()
    if not text:
        return [default]
    slugs = [slug for slug in _LIST_SEPARATORS.split(text.lower()) if slug]
    unknown = [slug for slug in slugs if slug not in lists_by_slug]
    if unknown:
        raise _Rejected(f"No list has the slug {', '.join(unknown)}.", raw)
    return list(dict.fromkeys(lists_by_slug[slug] for slug in slugs))


def _seen_before(key: str, raw: str, seen: set[int]) -> bool:
    """Return True if the file had this address already; remember it (and its raw spelling) otherwise."""
    fingerprint = hash(key)
    if fingerprint in seen:
        return True
    seen.add(fingerprint)
    seen.add(hash(raw.strip().lower()))
    return False


def _row_check(*, chunk, cells, checked, row_number, job, columns, lists_by_slug, seen) -> None:
    """Validate one row and add it to the chunk as a row to write, an error or a duplicate."""
    email_at, name_at, lists_at = columns
    email, address_hash, invalid = checked
    try:
        raw = _email_cell(cells, email_at, name_at)
        if invalid:
            raise _Rejected(invalid, raw)
        name = _name_cell(cells, name_at, raw)
        list_ids = _list_ids(cells, lists_at, default=job.mailing_list_id, lists_by_slug=lists_by_slug, raw=raw)
    except _Rejected as rejected:
        chunk.errors.append(
            ImportRowError(job=job, row_number=row_number, value=rejected.value[:300], reason=rejected.reason[:300])
        )
        return
    key = email.lower()
    if _seen_before(key, raw, seen):
        chunk.duplicates += 1
        return
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

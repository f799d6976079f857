"""CSV out: subscribers, and an import's bad rows, written row by row in constant memory."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import TextIO

from django.utils import timezone

from subscriptions.models import ImportJob, ImportRowError, Subscription

EXPORT_CHUNK_ROWS = 2000
SUBSCRIBER_COLUMNS = [
    "email",
    "name",
    "list",
    "status",
    "consent_source",
    "consented_at",
    "consent_detail",
    "confirmed_at",
    "unsubscribed_at",
    "unsubscribe_source",
]
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell_safe(value: str) -> str:
    """Return a cell that a spreadsheet will show, not run as a formula (a leading ' is how it shows text).

    Addresses too: a valid one can start with =, +, - or @.
    """
    if value and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def csv_cell_read(value: str) -> str:
    """Return a cell as it was before csv_cell_safe guarded it, so an export re-imports as it was."""
    if value.startswith("'") and value[1:].startswith(_FORMULA_STARTS):
        return value[1:]
    return value


def _when(value) -> str:
    return timezone.localtime(value).isoformat(timespec="seconds") if value else ""


def subscriber_rows(*, list_id: int | None = None, status: str | None = None) -> Iterator[list[str]]:
    """Yield the header and one row per subscription, filtered by list and status.

    The columns email, name and list re-import as they are (--lists-column list).
    """
    yield SUBSCRIBER_COLUMNS
    rows = Subscription.objects.all()
    if list_id is not None:
        rows = rows.filter(mailing_list_id=list_id)
    if status:
        rows = rows.filter(status=status)
    values = rows.order_by("pk").values_list(
        "subscriber__email",
        "subscriber__name",
        "mailing_list__slug",
        "status",
        "consent_source",
        "consented_at",
        "consent_detail",
        "confirmed_at",
        "unsubscribed_at",
        "unsubscribe_source",
    )
    for email, name, slug, state, source, consented, detail, confirmed, unsubscribed, unsub_source in values.iterator(
        chunk_size=EXPORT_CHUNK_ROWS
    ):
        yield [
            csv_cell_safe(email),
            csv_cell_safe(name),
            slug,
            state,
            source,
            _when(consented),
            csv_cell_safe(detail),
            _when(confirmed),
            _when(unsubscribed),
            unsub_source,
        ]


def import_error_rows(*, job: ImportJob) -> Iterator[list[str]]:
    """Yield the header and one row per bad row of the import, in file order.

    The address comes first under "email", so the file, once its addresses
    are fixed, imports as it is (the other columns are ignored).
    """
    yield ["email", "reason", "row"]
    errors = ImportRowError.objects.filter(job=job).order_by("row_number").values_list("row_number", "value", "reason")
    for row_number, value, reason in errors.iterator(chunk_size=EXPORT_CHUNK_ROWS):
        yield [csv_cell_safe(value), reason, str(row_number)]


class _Line:
    """A file-like object that hands back what csv.writer writes to it."""

    def write(self, value: str) -> str:
        return value


def csv_lines(rows: Iterable[list[str]]) -> Iterator[str]:
    """Yield each row as one CSV line, for a streaming response."""
    writer = csv.writer(_Line())
    for row in rows:
        yield writer.writerow(row)


def subscribers_write(*, out: TextIO, list_id: int | None = None, status: str | None = None) -> int:
    """Write the subscriber CSV to a file; return the number of data rows."""
    writer = csv.writer(out)
    count = -1
    for row in subscriber_rows(list_id=list_id, status=status):
        writer.writerow(row)
        count += 1
    return count


def import_errors_write(*, job: ImportJob, out: TextIO) -> None:
    """Write the import's bad rows to a file as CSV."""
    csv.writer(out).writerows(import_error_rows(job=job))

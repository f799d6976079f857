"""Cursor pagination: keyset on id, with an opaque cursor naming the last id seen."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from django.db.models import QuerySet
from ninja import Path, Schema

from api.errors import ApiProblem

PAGE_DEFAULT = 100
PAGE_MAX = 1000
ID_MAX = 2**63 - 1  # the largest id a database column holds
IdPath = Annotated[int, Path(..., ge=0, le=ID_MAX)]


def moment(value: datetime | None, *, field: str) -> datetime | None:
    """Return the time in UTC (a time without a zone is taken as UTC); refuse one out of range."""
    if value is None:
        return None
    try:
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except (OverflowError, ValueError):
        raise ApiProblem(
            422, "That time is out of range.", errors=[{"field": field, "message": "Out of range."}]
        ) from None


def cursor_encode(last_id: int) -> str:
    """Return the opaque cursor for the page after `last_id`."""
    return base64.urlsafe_b64encode(f"after:{last_id}".encode()).decode().rstrip("=")


def cursor_decode(cursor: str | None) -> int:
    """Return the id a cursor names (0 for none), or refuse a cursor we did not make."""
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, number = raw.partition(":")
        last_id = int(number)
        if kind != "after" or last_id < 0 or not number.isdigit() or len(number) > 19:
            raise ValueError
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiProblem(
            400,
            "The cursor is not one this API gave: pass next_cursor from the previous page as it was.",
            errors=[{"field": "cursor", "message": "Not a valid cursor."}],
        ) from None
    return last_id


class Page(Schema):
    next_cursor: str | None = None


def page_of(queryset: QuerySet, *, cursor: str | None, limit: int, serialize: Callable[[list], list]) -> dict:
    """Return one page of the queryset in id order, and the cursor of the next page (None at the end)."""
    after = cursor_decode(cursor)
    rows = list(queryset.filter(id__gt=after).order_by("id")[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more:
        last = rows[-1]
        next_cursor = cursor_encode(last["id"] if isinstance(last, dict) else last.id)
    return {"items": serialize(rows), "next_cursor": next_cursor}

"""Provider events (delivered, bounced, complained, opened, ...) per issue or reader."""

from __future__ import annotations

from datetime import datetime

from django.db.models import F
from ninja import Query, Router, Schema

from api.auth import needs
from api.cursors import ID_MAX, PAGE_DEFAULT, PAGE_MAX, Page, page_of
from api.errors import PROBLEM_STATUSES, Problem
from issues.models import DeliveryEvent

router = Router(tags=["events"])


class EventOut(Schema):
    id: int
    provider: str
    event_type: str
    issue_id: int | None
    subscriber_id: int | None
    delivery_id: int | None
    recipient: str
    reject_reason: str
    description: str
    occurred_at: datetime | None
    received_at: datetime


class EventPage(Page):
    items: list[EventOut]


@router.get(
    "/events",
    response={200: EventPage, PROBLEM_STATUSES: Problem},
    auth=needs("reports:read", "issues.view_deliveryevent"),
    summary="List provider events, oldest first, for an issue or a reader",
)
def events_list(
    request,
    cursor: str | None = Query(None, max_length=100),
    limit: int = Query(PAGE_DEFAULT, ge=1, le=PAGE_MAX),
    issue: int | None = Query(None, ge=1, le=ID_MAX, description="An issue's id."),
    subscriber: int | None = Query(None, ge=1, le=ID_MAX, description="A subscriber's id."),
    type: str | None = Query(None, max_length=40, description="e.g. delivered, bounced, complained."),
):
    events = DeliveryEvent.objects.all()
    if issue is not None:
        events = events.filter(delivery__issue_id=issue)
    if subscriber is not None:
        events = events.filter(delivery__subscriber_id=subscriber)
    if type:
        events = events.filter(event_type=type)
    rows = events.values(
        "id",
        "provider",
        "event_type",
        "delivery_id",
        "recipient",
        "reject_reason",
        "description",
        "occurred_at",
        "received_at",
        issue_id=F("delivery__issue_id"),
        subscriber_id=F("delivery__subscriber_id"),
    )
    return page_of(rows, cursor=cursor, limit=limit, serialize=list)

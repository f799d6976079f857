"""The suppression list: addresses never mailed again."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from django.core.exceptions import ValidationError
from django.db.models import Q
from ninja import Field, Query, Router, Schema, Status
from ninja.decorators import decorate_view

from api.auth import needs
from api.cursors import PAGE_DEFAULT, PAGE_MAX, IdPath, Page, page_of
from api.errors import PROBLEM_STATUSES, ApiProblem, Problem
from api.idempotency import idempotent
from subscriptions import suppressions
from subscriptions.addresses import email_hash, email_normalize
from subscriptions.models import Suppression

router = Router(tags=["suppressions"])

Reason = Literal["hard_bounce", "soft_bounces", "complaint", "rejected", "erased", "manual"]
AddReason = Literal["hard_bounce", "complaint", "rejected", "manual"]


class SuppressionOut(Schema):
    id: int
    email: str = Field(..., description="Blank for an erased reader: only a keyed hash of the address is kept.")
    reason: str
    note: str
    created_at: datetime


class SuppressionPage(Page):
    items: list[SuppressionOut]


class SuppressionIn(Schema):
    email: str = Field(..., max_length=320)
    reason: AddReason = "manual"
    note: str = Field("", max_length=500)


def _problems(ok: dict) -> dict:
    return {**ok, PROBLEM_STATUSES: Problem}


_FIELDS = ("id", "email", "reason", "note", "created_at")


@router.get(
    "/suppressions",
    response=_problems({200: SuppressionPage}),
    auth=needs("subscribers:read", "subscriptions.view_suppression"),
    summary="List suppressed addresses",
)
def suppressions_list(
    request,
    cursor: str | None = Query(None, max_length=100),
    limit: int = Query(PAGE_DEFAULT, ge=1, le=PAGE_MAX),
    reason: Reason | None = None,
    q: str | None = Query(None, max_length=320, description="Part of an address, or a whole erased one."),
):
    rows = Suppression.objects.all()
    if reason:
        rows = rows.filter(reason=reason)
    if q and q.strip():
        term = q.strip()
        rows = rows.filter(Q(email__icontains=term) | Q(email_hash=email_hash(term)))
    return page_of(rows.values(*_FIELDS), cursor=cursor, limit=limit, serialize=list)


@router.post(
    "/suppressions",
    response=_problems({201: SuppressionOut, 200: SuppressionOut}),
    auth=needs("subscribers:write", "subscriptions.add_suppression"),
    summary="Suppress an address (201; 200 with the first entry when it already was)",
)
@decorate_view(idempotent)
def suppressions_add(request, payload: SuppressionIn):
    try:
        email = email_normalize(payload.email)
    except ValidationError as exc:
        raise ApiProblem(422, exc.messages[0], errors=[{"field": "email", "message": exc.messages[0]}]) from None
    existed = Suppression.objects.filter(email_hash=email_hash(email)).exists()
    entry = suppressions.suppression_add(email=email, reason=payload.reason, note=" ".join(payload.note.split()))
    return Status(200 if existed else 201, Suppression.objects.filter(pk=entry.pk).values(*_FIELDS).get())


@router.delete(
    "/suppressions/{suppression_id}",
    response=_problems({204: None}),
    auth=needs("subscribers:write", "subscriptions.delete_suppression"),
    summary="Take an address off the suppression list (an erased reader's entry stays)",
)
def suppressions_remove(request, suppression_id: IdPath):
    try:
        removed = suppressions.suppression_remove(suppression_id=suppression_id, actor=request.auth.user)
    except ValidationError as exc:
        raise ApiProblem(409, " ".join(exc.messages)) from None
    if not removed:
        raise ApiProblem(404, "No such suppression.")
    return Status(204, None)

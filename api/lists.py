"""Lists: anyone with a reading scope reads them; admins create and change them."""

from __future__ import annotations

from datetime import datetime

from django.shortcuts import get_object_or_404
from ninja import Field, Query, Router, Schema, Status
from ninja.decorators import decorate_view

from api.auth import needs
from api.cursors import PAGE_DEFAULT, PAGE_MAX, IdPath, Page, page_of
from api.errors import PROBLEM_STATUSES, Problem
from api.idempotency import idempotent
from subscriptions import services
from subscriptions.models import EMAIL_MAX_LENGTH, MailingList

router = Router(tags=["lists"])

READ = needs(("subscribers:read", "issues:read"), "subscriptions.view_mailinglist")


class ListOut(Schema):
    id: int
    name: str
    slug: str
    description: str
    from_name: str
    from_email: str
    reply_to: str
    footer_text: str
    is_public: bool
    archive_enabled: bool
    tracking_enabled: bool
    double_opt_in: bool
    send_welcome: bool
    created_at: datetime


class ListPage(Page):
    items: list[ListOut]


class ListPatch(Schema):
    name: str | None = Field(None, min_length=1, max_length=200)
    slug: str | None = Field(None, min_length=1, max_length=80)
    description: str | None = Field(None, max_length=10_000)
    from_name: str | None = Field(None, min_length=1, max_length=200)
    from_email: str | None = Field(None, min_length=3, max_length=EMAIL_MAX_LENGTH)
    reply_to: str | None = Field(None, max_length=EMAIL_MAX_LENGTH)
    footer_text: str | None = Field(None, max_length=10_000)
    is_public: bool | None = None
    archive_enabled: bool | None = None
    tracking_enabled: bool | None = None
    double_opt_in: bool | None = None
    send_welcome: bool | None = None


class ListIn(ListPatch):
    name: str = Field(..., min_length=1, max_length=200)
    slug: str = Field(..., min_length=1, max_length=80)
    from_name: str = Field(..., min_length=1, max_length=200)
    from_email: str = Field(..., min_length=3, max_length=EMAIL_MAX_LENGTH)


def _problems(ok: dict) -> dict:
    return {**ok, PROBLEM_STATUSES: Problem}


@router.get("/lists", response=_problems({200: ListPage}), auth=READ, summary="List the mailing lists")
def lists_list(
    request,
    cursor: str | None = Query(None, max_length=100),
    limit: int = Query(PAGE_DEFAULT, ge=1, le=PAGE_MAX),
):
    return page_of(MailingList.objects.all(), cursor=cursor, limit=limit, serialize=list)


@router.get("/lists/{list_id}", response=_problems({200: ListOut}), auth=READ, summary="Read a list")
def lists_get(request, list_id: IdPath):
    return get_object_or_404(MailingList, pk=list_id)


@router.post(
    "/lists",
    response=_problems({201: ListOut}),
    auth=needs("subscribers:write", "subscriptions.add_mailinglist"),
    summary="Create a list (admins)",
)
@decorate_view(idempotent)
def lists_create(request, payload: ListIn):
    mailing_list = MailingList(**{k: v for k, v in payload.dict().items() if v is not None})
    services.mailing_list_save(mailing_list=mailing_list, actor=request.auth.user)
    return Status(201, mailing_list)


@router.patch(
    "/lists/{list_id}",
    response=_problems({200: ListOut}),
    auth=needs("subscribers:write", "subscriptions.change_mailinglist"),
    summary="Change a list (admins)",
)
def lists_update(request, list_id: IdPath, payload: ListPatch):
    mailing_list = get_object_or_404(MailingList, pk=list_id)
    for name, value in payload.dict(exclude_unset=True).items():
        if value is None:
            continue
        setattr(mailing_list, name, value)
    return services.mailing_list_save(mailing_list=mailing_list, actor=request.auth.user)

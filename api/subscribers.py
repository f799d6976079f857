"""Subscribers: add with a consent record, read, search, change, unsubscribe, erase, bulk upsert."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from typing import Literal

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from ninja import Field, Query, Router, Schema, Status
from ninja.decorators import decorate_view

from api.auth import needs
from api.cursors import PAGE_DEFAULT, PAGE_MAX, IdPath, Page, cursor_decode, cursor_encode, moment, page_of
from api.errors import PROBLEM_STATUSES, ApiProblem, Problem
from api.idempotency import idempotent
from api.selectors import subscribers_page_json
from subscriptions import services, unsubscribing
from subscriptions.addresses import email_normalize
from subscriptions.erasure import subscriber_erase
from subscriptions.models import NAME_MAX_LENGTH, MailingList, Subscriber, Subscription

router = Router(tags=["subscribers"])

BULK_MAX = 1000
RAW_EMAIL_MAX = 320  # longer than any valid address: email_normalize says what is wrong
READ = needs("subscribers:read", "subscriptions.view_subscriber")
SubscriptionStatus = Literal["pending", "active", "unsubscribed"]


class SubscriptionOut(Schema):
    list_id: int
    list_slug: str
    status: str
    consent_source: str
    consented_at: datetime
    consent_detail: str
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None
    unsubscribe_source: str


class SubscriberOut(Schema):
    id: int
    email: str
    name: str
    created_at: datetime
    updated_at: datetime
    subscriptions: list[SubscriptionOut]


class SubscriberPage(Page):
    items: list[SubscriberOut]


class SubscriberIn(Schema):
    email: str = Field(..., max_length=RAW_EMAIL_MAX, description="Validated and normalised as on the web form.")
    name: str | None = Field(None, max_length=NAME_MAX_LENGTH)
    lists: list[str] = Field(..., min_length=1, max_length=100, description="Slugs of the lists to join.")
    consent_given: bool = Field(
        False,
        description="True when the reader already consented elsewhere: no confirmation mail, active at once. "
        "Needs the permission subscriptions.add_subscription. False: double opt-in where the list has it.",
    )
    note: str = Field("", max_length=200, description="Where the consent came from, kept with it.")


class SubscriberPatch(Schema):
    name: str | None = Field(None, max_length=NAME_MAX_LENGTH)
    lists: list[str] | None = Field(
        None, max_length=100, description="Exactly the lists the reader should be on; others are unsubscribed."
    )
    consent_given: bool = False
    note: str = Field("", max_length=200)


class UnsubscribeIn(Schema):
    lists: list[str] | None = Field(None, max_length=100, description="Slugs; leave out for every list.")


class UnsubscribeOut(Schema):
    unsubscribed: int


class BulkItem(Schema):
    email: str = Field(..., max_length=RAW_EMAIL_MAX)
    name: str | None = Field(None, max_length=NAME_MAX_LENGTH)
    lists: list[str] = Field(..., max_length=100)


class BulkIn(Schema):
    items: list[BulkItem] = Field(..., min_length=1, max_length=BULK_MAX)
    consent_given: bool = False
    note: str = Field("", max_length=200)


class BulkResult(Schema):
    index: int
    email: str
    result: Literal["created", "updated", "unchanged", "error"]
    id: int | None = None
    errors: list[str] = []


class BulkOut(Schema):
    created: int
    updated: int
    unchanged: int
    errors: int
    results: list[BulkResult]


def _problems(ok: dict) -> dict:
    return {**ok, PROBLEM_STATUSES: Problem}


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


_SUBSCRIPTION_COLUMNS = (
    "subscriber_id",
    "mailing_list_id",
    "status",
    "consent_source",
    "consented_at",
    "consent_detail",
    "confirmed_at",
    "unsubscribed_at",
    "unsubscribe_source",
)


def subscribers_serialize(rows: list[dict]) -> list[dict]:
    """Return subscriber rows (id, email, name, created_at, updated_at) with their subscriptions, as plain JSON data.

    One query for the page's subscriptions; list slugs from one small
    query; times as ISO 8601 strings, so the page can be encoded by the C
    JSON encoder without a per-value hook (SubscriberOut documents the shape).
    """
    by_subscriber: dict[int, list[dict]] = defaultdict(list)
    if rows:
        slugs = dict(MailingList.objects.values_list("id", "slug"))
        subscriptions = (
            Subscription.objects.filter(subscriber_id__in=[r["id"] for r in rows])
            .order_by("subscriber_id", "mailing_list_id")
            .values_list(*_SUBSCRIPTION_COLUMNS)
        )
        for sub_id, list_id, status, source, consented, detail, confirmed, unsubscribed, how in subscriptions:
            by_subscriber[sub_id].append(
                {
                    "list_id": list_id,
                    "list_slug": slugs.get(list_id, ""),
                    "status": status,
                    "consent_source": source,
                    "consented_at": _iso(consented),
                    "consent_detail": detail,
                    "confirmed_at": _iso(confirmed),
                    "unsubscribed_at": _iso(unsubscribed),
                    "unsubscribe_source": how,
                }
            )
    return [
        {
            "id": row["id"],
            "email": row["email"],
            "name": row["name"],
            "created_at": _iso(row["created_at"]),
            "updated_at": _iso(row["updated_at"]),
            "subscriptions": by_subscriber.get(row["id"], []),
        }
        for row in rows
    ]


_FIELDS = ("id", "email", "name", "created_at", "updated_at")


def _one(subscriber_id: int) -> dict:
    rows = list(Subscriber.objects.filter(pk=subscriber_id).values(*_FIELDS))
    if not rows:
        raise ApiProblem(404, "No such subscriber.")
    return subscribers_serialize(rows)[0]


def _lists_by_slug(slugs: list[str], *, field: str = "lists") -> list[MailingList]:
    found = {ml.slug: ml for ml in MailingList.objects.filter(slug__in=set(slugs))}
    unknown = [s for s in dict.fromkeys(slugs) if s not in found]
    if unknown:
        raise ApiProblem(
            422,
            "Unknown list: " + ", ".join(u[:80] for u in unknown[:10]),
            errors=[{"field": field, "message": f"No list with the slug {u[:80]!r}."} for u in unknown[:10]],
        )
    return [found[s] for s in dict.fromkeys(slugs)]


def _email(raw: str, *, field: str = "email") -> str:
    try:
        return email_normalize(raw)
    except ValidationError as exc:
        raise ApiProblem(422, exc.messages[0], errors=[{"field": field, "message": exc.messages[0]}]) from None


def _consent(request, consent_given: bool) -> None:
    if consent_given and not request.auth.user.has_perm("subscriptions.add_subscription"):
        raise ApiProblem(
            403,
            "Only a token whose user may add subscriptions (subscriptions.add_subscription) can say consent was given.",
        )


def _detail(request, note: str) -> str:
    token = request.auth
    detail = f"API token {token.prefix} ({token.name})"
    note = " ".join(note.split())
    return f"{detail}: {note}"[:300] if note else detail[:300]


def _name(value: str | None, *, field: str = "name") -> str | None:
    if value is None:
        return None
    if "\r" in value or "\n" in value or "\x00" in value:
        raise ApiProblem(422, "A name is a single line.", errors=[{"field": field, "message": "No line breaks."}])
    return value.strip()


@router.get("/subscribers", response=_problems({200: SubscriberPage}), auth=READ, summary="List and search subscribers")
def subscribers_list(
    request,
    cursor: str | None = Query(None, max_length=100),
    limit: int = Query(PAGE_DEFAULT, ge=1, le=PAGE_MAX),
    q: str | None = Query(None, max_length=200, description="Part of the address or the name, any letter case."),
    list_slug: str | None = Query(
        None, alias="list", max_length=80, description="Only readers with a subscription to this list slug."
    ),
    status: SubscriptionStatus | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
):
    subscribers = Subscriber.objects.all()
    if q and q.strip():
        term = q.strip()
        subscribers = subscribers.filter(Q(email__icontains=term) | Q(name__icontains=term))
    if list_slug or status:
        condition = Q(subscriber=OuterRef("pk"))
        if list_slug:
            condition &= Q(mailing_list__slug=list_slug)
        if status:
            condition &= Q(status=status)
        subscribers = subscribers.filter(Exists(Subscription.objects.filter(condition)))
    if created_after:
        subscribers = subscribers.filter(created_at__gt=moment(created_after, field="created_after"))
    if created_before:
        subscribers = subscribers.filter(created_at__lt=moment(created_before, field="created_before"))
    # The page is plain JSON in the documented shape (SubscriberPage), sent
    # as it is: no validation pass over 1,000 readers.
    if connection.vendor == "postgresql":
        items, last_id = subscribers_page_json(subscribers, after=cursor_decode(cursor), limit=limit)
        next_cursor = json.dumps(cursor_encode(last_id) if last_id is not None else None)
        body = '{"items": [' + ", ".join(items) + '], "next_cursor": ' + next_cursor + "}"
    else:
        page = page_of(subscribers.values(*_FIELDS), cursor=cursor, limit=limit, serialize=subscribers_serialize)
        body = json.dumps(page, ensure_ascii=False)
    return HttpResponse(body, content_type="application/json; charset=utf-8")


@router.get(
    "/subscribers/by-email", response=_problems({200: SubscriberOut}), auth=READ, summary="Find a subscriber by address"
)
def subscribers_by_email(request, email: str = Query(..., max_length=RAW_EMAIL_MAX)):
    address = _email(email)
    found = Subscriber.objects.filter(email__iexact=address).values_list("pk", flat=True).first()
    if found is None:
        raise ApiProblem(404, "No subscriber has that address.")
    return _one(found)


# Before the routes with a {subscriber_id}, which would take "bulk" for one.
@router.post(
    "/subscribers/bulk",
    response=_problems({200: BulkOut}),
    auth=needs("subscribers:write", "subscriptions.add_subscriber", "subscriptions.change_subscriber"),
    summary=f"Add or update up to {BULK_MAX} subscribers, with a result per item",
    description="Each item is handled on its own: a bad item gets `error` with the reasons and changes nothing, "
    "the others go ahead. An existing address gets the name given and joins the lists (none is removed).",
)
@decorate_view(idempotent)
def subscribers_bulk(request, payload: BulkIn):
    _consent(request, payload.consent_given)
    slugs = {slug for item in payload.items for slug in item.lists}
    lists = {ml.slug: ml for ml in MailingList.objects.filter(slug__in=slugs)}
    detail = _detail(request, payload.note)
    results = []
    seen: dict[str, int] = {}
    for index, item in enumerate(payload.items):
        errors = []
        email = ""
        try:
            email = email_normalize(item.email)
        except ValidationError as exc:
            errors.append(exc.messages[0])
        if email and email.lower() in seen:
            errors.append(f"The same address as item {seen[email.lower()]}.")
        elif email:
            seen[email.lower()] = index
        if item.name is not None and ("\r" in item.name or "\n" in item.name or "\x00" in item.name):
            errors.append("A name is a single line.")
        unknown = [s for s in item.lists if s not in lists]
        if unknown:
            errors.append("Unknown list: " + ", ".join(s[:80] for s in unknown[:10]))
        if not item.lists:
            errors.append("Name at least one list.")
        result = {"index": index, "email": email or item.email[:RAW_EMAIL_MAX], "result": "error", "errors": errors}
        if not errors:
            try:
                with transaction.atomic():
                    outcome = services.subscriber_upsert(
                        email=email,
                        name=item.name.strip() if item.name is not None else None,
                        lists=[lists[s] for s in dict.fromkeys(item.lists)],
                        consent_given=payload.consent_given,
                        detail=detail,
                        actor=request.auth.user,
                    )
                result.update(result=outcome.result, id=outcome.subscriber.pk)
            except ValidationError as exc:
                result["errors"] = exc.messages
        results.append(result)
    counts = {kind: sum(1 for r in results if r["result"] == kind) for kind in ("created", "updated", "unchanged")}
    return {**counts, "errors": sum(1 for r in results if r["result"] == "error"), "results": results}


@router.get("/subscribers/{subscriber_id}", response=_problems({200: SubscriberOut}), auth=READ, summary="Read")
def subscribers_get(request, subscriber_id: IdPath):
    return _one(subscriber_id)


@router.post(
    "/subscribers",
    response=_problems({201: SubscriberOut}),
    auth=needs("subscribers:write", "subscriptions.add_subscriber", "subscriptions.add_subscription"),
    summary="Add a subscriber to lists, with a consent record (source api)",
    description="An address that already exists answers 409 with its id in `detail`; change it with PATCH or use "
    "the bulk upsert.",
)
@decorate_view(idempotent)
def subscribers_create(request, payload: SubscriberIn):
    _consent(request, payload.consent_given)
    email = _email(payload.email)
    name = _name(payload.name)
    lists = _lists_by_slug(payload.lists)
    existing = Subscriber.objects.filter(email__iexact=email).values_list("pk", flat=True).first()
    if existing is not None:
        raise ApiProblem(409, f"A subscriber with this address exists: id {existing}.")
    try:
        outcome = services.subscriber_upsert(
            email=email,
            name=name,
            lists=lists,
            consent_given=payload.consent_given,
            detail=_detail(request, payload.note),
            actor=request.auth.user,
        )
    except ValidationError as exc:
        raise ApiProblem(422, exc.messages[0], errors=[{"field": "email", "message": exc.messages[0]}]) from None
    return Status(201, _one(outcome.subscriber.pk))


@router.patch(
    "/subscribers/{subscriber_id}",
    response=_problems({200: SubscriberOut}),
    auth=needs("subscribers:write", "subscriptions.change_subscriber", "subscriptions.change_subscription"),
    summary="Change a subscriber's name and lists",
)
def subscribers_update(request, subscriber_id: IdPath, payload: SubscriberPatch):
    get_object_or_404(Subscriber, pk=subscriber_id)
    _consent(request, payload.consent_given)
    name = _name(payload.name)
    lists = _lists_by_slug(payload.lists) if payload.lists is not None else None
    try:
        with transaction.atomic():
            if name is not None:
                services.subscriber_name_set(subscriber_id=subscriber_id, name=name, actor=request.auth.user)
            if lists is not None:
                services.subscriber_lists_set(
                    subscriber_id=subscriber_id,
                    lists=lists,
                    consent_given=payload.consent_given,
                    detail=_detail(request, payload.note),
                    actor=request.auth.user,
                )
    except ValidationError as exc:
        raise ApiProblem(422, exc.messages[0], errors=[{"field": "lists", "message": exc.messages[0]}]) from None
    return _one(subscriber_id)


@router.post(
    "/subscribers/{subscriber_id}/unsubscribe",
    response=_problems({200: UnsubscribeOut}),
    auth=needs("subscribers:write", "subscriptions.change_subscription"),
    summary="Unsubscribe from some lists, or from all",
)
def subscribers_unsubscribe(request, subscriber_id: IdPath, payload: UnsubscribeIn):
    get_object_or_404(Subscriber, pk=subscriber_id)
    source = Subscription.UnsubscribeSource.API
    if payload.lists is None:
        count = unsubscribing.subscriber_unsubscribe_all(subscriber_id=subscriber_id, source=source)
    else:
        lists = _lists_by_slug(payload.lists)
        count = sum(
            unsubscribing.subscription_unsubscribe(subscriber_id=subscriber_id, list_id=ml.pk, source=source)
            for ml in lists
        )
    return {"unsubscribed": count}


@router.delete(
    "/subscribers/{subscriber_id}",
    response=_problems({204: None}),
    auth=needs("subscribers:write", "subscriptions.delete_subscriber"),
    summary="Erase a subscriber: everything goes, a keyed hash stays on the suppression list",
)
def subscribers_erase(request, subscriber_id: IdPath):
    if not subscriber_erase(subscriber_id=subscriber_id):
        raise ApiProblem(404, "No such subscriber.")
    return Status(204, None)

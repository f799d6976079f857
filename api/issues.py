"""Issues: drafts, preview, test, schedule, send, pause, resume, cancel, progress, report, failures."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from django.core.exceptions import ValidationError
from django.db.models import Q
from django.shortcuts import get_object_or_404
from ninja import Field, Query, Router, Schema, Status
from ninja.decorators import decorate_view

from api.auth import needs
from api.cursors import PAGE_DEFAULT, PAGE_MAX, IdPath, Page, moment, page_of
from api.errors import PROBLEM_STATUSES, ApiProblem, Problem, validation_errors
from api.idempotency import idempotent
from issues import rendering, selectors, services
from issues.delivery.messages import issue_preview_headers
from issues.forms import MAX_TEST_ADDRESSES, IssueForm, TestSendForm
from issues.models import MAX_BODY_LENGTH, Issue
from subscriptions.models import MailingList

router = Router(tags=["issues"])

READ = needs("issues:read", "issues.view_issue")
SEND = needs("issues:send", "issues.change_issue")
REPORT = needs("reports:read", "issues.view_issue", "issues.view_delivery")
PREVIEW_UNSUBSCRIBE_URL = "https://example.invalid/u/preview/"
PREVIEW_PREFERENCES_URL = "https://example.invalid/p/preview/"
IssueStatus = Literal["draft", "scheduled", "sending", "paused", "sent", "cancelled"]


class IssueOut(Schema):
    id: int
    title: str
    subtitle: str
    byline: str
    body: str
    slug: str
    status: str
    lists: list[str] = Field(..., description="Slugs of the issue's lists.")
    scheduled_at: datetime | None
    started_at: datetime | None
    sent_at: datetime | None
    created_at: datetime
    updated_at: datetime


class IssuePage(Page):
    items: list[IssueOut]


class IssuePatch(Schema):
    title: str | None = Field(None, max_length=300)
    subtitle: str | None = Field(None, max_length=300)
    byline: str | None = Field(None, max_length=200)
    body: str | None = Field(None, max_length=MAX_BODY_LENGTH)
    lists: list[str] | None = Field(None, max_length=100, description="Slugs.")


class IssueIn(IssuePatch):
    title: str = Field(..., max_length=300)
    body: str = Field(..., max_length=MAX_BODY_LENGTH)
    lists: list[str] = Field(..., min_length=1, max_length=100, description="Slugs.")


class PreviewOut(Schema):
    subject: str
    html: str
    text: str
    headers: dict[str, str]


class TestIn(Schema):
    addresses: list[str] = Field(..., min_length=1, max_length=MAX_TEST_ADDRESSES)


class TestOut(Schema):
    queued_to: list[str]


class ScheduleIn(Schema):
    when: datetime = Field(..., description="With a time zone, e.g. 2030-01-31T08:00:00-05:00.")


class ActionOut(Schema):
    changed: bool = Field(..., description="False when the issue's status did not allow it; nothing was done.")
    issue: IssueOut


class SkippedReasonOut(Schema):
    reason: str
    count: int


class ProgressOut(Schema):
    """The progress page's figures: every reader is in exactly one of sent, failed, skipped, cancelled,
    pending (waiting to be sent or retried) and in_flight (in a batch being sent)."""

    status: str
    ledger_written: bool
    total: int
    sent: int
    failed: int
    skipped: int
    skipped_reasons: list[SkippedReasonOut]
    cancelled: int
    pending: int
    deferred: int
    in_flight: int
    stopping: int
    reclaimed: int
    rate_per_second: float | None
    eta_seconds: int | None
    duration_seconds: int | None
    percent: float


class ReasonOut(Schema):
    status: str
    reason: str
    count: int


class ReportOut(Schema):
    recipients: int
    sent: int
    delivered: int
    bounced: int
    complained: int
    failed: int
    skipped: int
    cancelled: int
    waiting: int
    deferred: int
    unsubscribed: int
    tracking: bool
    opened: int | None = Field(None, description="Only when one of the issue's lists tracks opens.")
    clicked: int | None = None
    reasons: list[ReasonOut]


class FailureOut(Schema):
    id: int
    subscriber_id: int | None
    email: str
    status: str
    attempts: int
    reason: str
    updated_at: datetime


class FailurePage(Page):
    items: list[FailureOut]


def _problems(ok: dict) -> dict:
    return {**ok, PROBLEM_STATUSES: Problem}


def _out(issue: Issue) -> dict:
    return {
        **{f: getattr(issue, f) for f in IssueOut.model_fields if f != "lists"},
        "lists": sorted(ml.slug for ml in issue.lists.all()),
    }


def _issue(issue_id: int) -> Issue:
    return get_object_or_404(Issue.objects.prefetch_related("lists"), pk=issue_id)


def _save(request, *, issue: Issue | None, values: dict) -> Issue:
    """Validate with the editor's own form and save through the same service."""
    slugs = values.pop("lists")
    found = {ml.slug: ml.pk for ml in MailingList.objects.filter(slug__in=set(slugs))}
    unknown = [s for s in slugs if s not in found]
    if unknown:
        raise ApiProblem(
            422,
            "Unknown list: " + ", ".join(s[:80] for s in unknown[:10]),
            errors=[{"field": "lists", "message": f"No list with the slug {s[:80]!r}."} for s in unknown[:10]],
        )
    data = {**{k: v or "" for k, v in values.items()}, "lists": [found[s] for s in slugs]}
    form = IssueForm(data=data, instance=issue)
    form.fields.pop("scheduled_at")  # scheduling is its own call
    if not form.is_valid():
        errors = [
            {"field": name if name != "__all__" else "(request)", "message": message}
            for name, messages in form.errors.items()
            for message in messages
        ]
        raise ApiProblem(422, "The issue has invalid fields; each is named below.", errors=errors)
    try:
        saved = services.issue_draft_save(form=form, actor=request.auth.user)
    except ValidationError as exc:
        raise ApiProblem(409, " ".join(exc.messages)) from None
    return _issue(saved.pk)


@router.get("/issues", response=_problems({200: IssuePage}), auth=READ, summary="List issues")
def issues_list(
    request,
    cursor: str | None = Query(None, max_length=100),
    limit: int = Query(PAGE_DEFAULT, ge=1, le=PAGE_MAX),
    status: IssueStatus | None = None,
    q: str | None = Query(None, max_length=200, description="Part of the title, subtitle or byline."),
):
    issues = Issue.objects.prefetch_related("lists")
    if status:
        issues = issues.filter(status=status)
    if q and q.strip():
        term = q.strip()
        issues = issues.filter(Q(title__icontains=term) | Q(subtitle__icontains=term) | Q(byline__icontains=term))
    return page_of(issues, cursor=cursor, limit=limit, serialize=lambda rows: [_out(i) for i in rows])


@router.post(
    "/issues",
    response=_problems({201: IssueOut}),
    auth=needs("issues:write", "issues.add_issue"),
    summary="Create a draft",
)
@decorate_view(idempotent)
def issues_create(request, payload: IssueIn):
    return Status(201, _out(_save(request, issue=None, values=payload.dict())))


@router.get("/issues/{issue_id}", response=_problems({200: IssueOut}), auth=READ, summary="Read an issue")
def issues_get(request, issue_id: IdPath):
    return _out(_issue(issue_id))


@router.patch(
    "/issues/{issue_id}",
    response=_problems({200: IssueOut}),
    auth=needs("issues:write", "issues.change_issue"),
    summary="Change a draft or scheduled issue",
)
def issues_update(request, issue_id: IdPath, payload: IssuePatch):
    issue = _issue(issue_id)
    if issue.status not in services.EDITABLE_STATUSES:
        raise ApiProblem(409, f"This issue is {issue.status}: it can no longer be edited.")
    values = {
        "title": issue.title,
        "subtitle": issue.subtitle,
        "byline": issue.byline,
        "body": issue.body,
        "lists": sorted(ml.slug for ml in issue.lists.all()),
    }
    values.update({k: v for k, v in payload.dict(exclude_unset=True).items() if v is not None})
    return _out(_save(request, issue=issue, values=values))


@router.get(
    "/issues/{issue_id}/preview",
    response=_problems({200: PreviewOut}),
    auth=READ,
    summary="The mail as a reader gets it: subject, HTML, text and headers (with example links)",
)
def issues_preview(request, issue_id: IdPath):
    issue = _issue(issue_id)
    rendered = rendering.issue_rendered(issue)
    links = {"unsubscribe_url": PREVIEW_UNSUBSCRIBE_URL, "preferences_url": PREVIEW_PREFERENCES_URL}
    return {
        "subject": rendered.subject,
        "html": rendering.rendered_personalize(rendered.html, **links),
        "text": rendering.rendered_personalize(rendered.text, **links),
        "headers": issue_preview_headers(issue=issue),
    }


@router.post(
    "/issues/{issue_id}/test",
    response=_problems({202: TestOut}),
    auth=SEND,
    summary=f"Mail a test copy to up to {MAX_TEST_ADDRESSES} addresses",
)
@decorate_view(idempotent)
def issues_test_send(request, issue_id: IdPath, payload: TestIn):
    issue = _issue(issue_id)
    for index, address in enumerate(payload.addresses):
        if "," in address or "\n" in address or "\r" in address:
            raise ApiProblem(
                422, "One address per item.", errors=[{"field": f"addresses.{index}", "message": "One address."}]
            )
    form = TestSendForm(data={"addresses": ",".join(payload.addresses)})
    if not form.is_valid():
        raise ApiProblem(
            422,
            " ".join(form.errors["addresses"]),
            errors=[{"field": "addresses", "message": m} for m in form.errors["addresses"]],
        )
    if not issue.lists.exists():
        raise ApiProblem(409, "Choose at least one list before sending a test: the sender and footer come from it.")
    services.issue_send_test(issue=issue, addresses=form.cleaned_data["addresses"])
    return Status(202, {"queued_to": form.cleaned_data["addresses"]})


@router.post("/issues/{issue_id}/schedule", response=_problems({200: IssueOut}), auth=SEND, summary="Schedule a draft")
@decorate_view(idempotent)
def issues_schedule(request, issue_id: IdPath, payload: ScheduleIn):
    issue = _issue(issue_id)
    if payload.when.tzinfo is None:
        raise ApiProblem(422, "Give the time zone.", errors=[{"field": "when", "message": "Needs a UTC offset."}])
    if issue.status not in services.EDITABLE_STATUSES:
        raise ApiProblem(409, f"This issue is {issue.status}: only a draft can be scheduled.")
    try:
        services.issue_schedule(issue=issue, when=moment(payload.when, field="when"), user=request.auth.user)
    except ValidationError as exc:
        raise ApiProblem(422, " ".join(exc.messages), errors=validation_errors(exc, prefix="when.")) from None
    return _out(_issue(issue_id))


def _action(issue_id: int, action) -> dict:
    issue = _issue(issue_id)
    changed = action(issue=issue)
    return {"changed": bool(changed), "issue": _out(_issue(issue_id))}


@router.post("/issues/{issue_id}/unschedule", response=_problems({200: ActionOut}), auth=SEND, summary="Back to draft")
def issues_unschedule(request, issue_id: IdPath):
    return _action(issue_id, services.issue_unschedule)


@router.post(
    "/issues/{issue_id}/send",
    response=_problems({200: ActionOut}),
    auth=SEND,
    summary="Send now",
    description="`changed` is false when the issue had already started: nobody gets it twice.",
)
@decorate_view(idempotent)
def issues_send(request, issue_id: IdPath):
    issue = _issue(issue_id)
    try:
        started = services.issue_send(issue=issue, user=request.auth.user)
    except ValidationError as exc:
        raise ApiProblem(409, " ".join(exc.messages)) from None
    return {"changed": started, "issue": _out(_issue(issue_id))}


@router.post("/issues/{issue_id}/pause", response=_problems({200: ActionOut}), auth=SEND, summary="Pause sending")
def issues_pause(request, issue_id: IdPath):
    return _action(issue_id, services.issue_pause)


@router.post("/issues/{issue_id}/resume", response=_problems({200: ActionOut}), auth=SEND, summary="Resume sending")
def issues_resume(request, issue_id: IdPath):
    return _action(issue_id, services.issue_resume)


@router.post("/issues/{issue_id}/cancel", response=_problems({200: ActionOut}), auth=SEND, summary="Cancel")
def issues_cancel(request, issue_id: IdPath):
    return _action(issue_id, services.issue_cancel)


@router.get(
    "/issues/{issue_id}/progress", response=_problems({200: ProgressOut}), auth=REPORT, summary="Sending progress"
)
def issues_progress(request, issue_id: IdPath):
    return services.issue_progress(issue=_issue(issue_id))


@router.get(
    "/issues/{issue_id}/report",
    response=_problems({200: ReportOut}),
    auth=REPORT,
    summary="The figures of the report page",
)
def issues_report(request, issue_id: IdPath):
    issue = _issue(issue_id)
    report = selectors.issue_report(issue=issue)
    report["reasons"] = [
        {"status": r["status"], "reason": r["last_error"], "count": r["count"]}
        for r in selectors.issue_failure_reasons(issue=issue)
    ]
    return report


@router.get(
    "/issues/{issue_id}/failures",
    response=_problems({200: FailurePage}),
    auth=REPORT,
    summary="Deliveries that did not reach the reader, with the reasons",
)
def issues_failures(
    request,
    issue_id: IdPath,
    cursor: str | None = Query(None, max_length=100),
    limit: int = Query(PAGE_DEFAULT, ge=1, le=PAGE_MAX),
):
    issue = _issue(issue_id)
    rows = selectors.issue_failures(issue=issue).values(
        "id", "subscriber_id", "email", "status", "attempts", "last_error", "updated_at"
    )

    def serialize(page: list[dict]) -> list[dict]:
        return [{**row, "reason": row.pop("last_error")} for row in page]

    return page_of(rows, cursor=cursor, limit=limit, serialize=serialize)

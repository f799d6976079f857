"""Sending an issue: schedule or send it, watch its progress, pause, resume or cancel it."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from dwvlist.access import editor_required
from issues import services
from issues.delivery.ledger import issue_recipient_count
from issues.forms import ScheduleForm
from issues.models import Issue
from issues.views import issue_or_404


@require_http_methods(["GET", "POST"])
@editor_required
def issue_schedule(request, issue_id: int):
    """Confirm a send time, showing how many readers will get the issue."""
    issue = issue_or_404(issue_id)
    if issue.status != Issue.Status.DRAFT:
        messages.error(request, f"This issue is {issue.get_status_display().lower()}: only a draft can be scheduled.")
        return redirect("editor:issue_preview", issue_id=issue.pk)
    initial = {"when": timezone.localtime(issue.scheduled_at)} if issue.scheduled_at else {}
    form = ScheduleForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.issue_schedule(issue=issue, when=form.cleaned_data["when"], user=request.user)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            when = timezone.localtime(form.cleaned_data["when"])
            messages.success(request, f"Scheduled for {when:%A %d %B %Y at %H:%M}.")
            return redirect("editor:issue_preview", issue_id=issue.pk)
    count = issue_recipient_count(issue=issue)
    return render(request, "issues/issue_schedule.html", {"issue": issue, "form": form, "recipient_count": count})


@require_POST
@editor_required
def issue_unschedule(request, issue_id: int):
    """Turn a scheduled issue back into a draft."""
    issue = issue_or_404(issue_id)
    if services.issue_unschedule(issue=issue):
        messages.success(request, "No longer scheduled; the issue is a draft again.")
    else:
        messages.info(request, "This issue was not scheduled.")
    return redirect("editor:issue_preview", issue_id=issue.pk)


@require_http_methods(["GET", "POST"])
@editor_required
def issue_send(request, issue_id: int):
    """Confirm and start sending now."""
    issue = issue_or_404(issue_id)
    if request.method == "POST":
        try:
            started = services.issue_send(issue=issue, user=request.user)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("editor:issue_preview", issue_id=issue.pk)
        if started:
            messages.success(request, "Sending has started.")
        else:
            issue.refresh_from_db()
            messages.info(
                request,
                f"Nothing was done: this issue is already {issue.get_status_display().lower()}.",
            )
        return redirect("editor:issue_progress", issue_id=issue.pk)
    if issue.status not in services.EDITABLE_STATUSES:
        messages.info(request, f"This issue is already {issue.get_status_display().lower()}.")
        return redirect("editor:issue_progress", issue_id=issue.pk)
    count = issue_recipient_count(issue=issue)
    return render(request, "issues/issue_send.html", {"issue": issue, "recipient_count": count})


def _progress(issue: Issue) -> dict:
    progress = dict(services.issue_progress(issue=issue))
    progress.setdefault("status", issue.status)
    return progress


@never_cache
@require_GET
@editor_required
def issue_progress(request, issue_id: int):
    """Show the live progress of a send, correct on every reload."""
    issue = issue_or_404(issue_id)
    progress = _progress(issue)
    context = {"issue": issue, "progress": progress, "heading": _progress_heading(progress)}
    return render(request, "issues/issue_progress.html", context)


_HEADINGS = {
    "draft": "Not sent yet:",
    "scheduled": "Scheduled:",
    "sending": "Sending",
    "paused": "Paused:",
    "sent": "Sent",
    "cancelled": "Cancelled:",
}


def _progress_heading(progress: dict) -> str:
    if progress["stopping"]:
        return "Stopping:"
    return _HEADINGS.get(progress["status"], "Sending")


@never_cache
@require_GET
@editor_required
def issue_progress_json(request, issue_id: int):
    """Answer the progress figures for the page's poller."""
    issue = issue_or_404(issue_id)
    progress = _progress(issue)
    progress["status_display"] = Issue.Status(progress["status"]).label
    return JsonResponse(progress)


def _control(action, done: str, not_done: str):
    @require_POST
    @editor_required
    def view(request, issue_id: int):
        issue = issue_or_404(issue_id)
        if action(issue=issue):
            messages.success(request, done)
        else:
            issue.refresh_from_db()
            messages.info(request, f"{not_done} (the issue is {issue.get_status_display().lower()}).")
        return redirect("editor:issue_progress", issue_id=issue.pk)

    view.__name__ = view.__qualname__ = action.__name__
    view.__doc__ = f"Call {action.__name__} and go back to the progress page."
    return view


issue_pause = _control(services.issue_pause, "Paused: no new batch starts until you resume.", "Nothing to pause")
issue_resume = _control(services.issue_resume, "Resumed.", "Nothing to resume")


@require_http_methods(["GET", "POST"])
@editor_required
def issue_cancel(request, issue_id: int):
    """Ask, saying how many readers will not get the issue; then cancel it."""
    issue = issue_or_404(issue_id)
    if issue.status not in (Issue.Status.SCHEDULED, Issue.Status.SENDING, Issue.Status.PAUSED):
        messages.info(request, f"Nothing to cancel (the issue is {issue.get_status_display().lower()}).")
        return redirect("editor:issue_progress", issue_id=issue.pk)
    if request.method == "GET":
        return render(
            request, "issues/issue_cancel.html", {"issue": issue, **services.issue_cancel_preview(issue=issue)}
        )
    if not services.issue_cancel(issue=issue):
        issue.refresh_from_db()
        messages.info(request, f"Nothing to cancel (the issue is {issue.get_status_display().lower()}).")
        return redirect("editor:issue_progress", issue_id=issue.pk)
    progress = services.issue_progress(issue=issue)
    note = f"Cancelled: {progress['cancelled']:,} readers will not get this issue."
    if progress["stopping"]:
        note += f" The batch already being sent ({progress['stopping']:,} readers) finishes first."
    messages.success(request, note)
    return redirect("editor:issue_progress", issue_id=issue.pk)

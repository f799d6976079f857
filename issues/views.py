"""The editor's pages: compose, preview, test, schedule, send, watch, report."""

from __future__ import annotations

import csv
import re
import secrets

from django.contrib import messages
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from dwvlist.access import editor_required
from dwvlist.charts import chart_svg_bars
from issues import rendering, selectors, services
from issues.delivery.ledger import issue_recipient_count
from issues.delivery.messages import issue_preview_headers
from issues.forms import DraftForm, IssueForm, ScheduleForm, TestSendForm
from issues.models import Issue
from issues.selectors import dashboard_context, issues_figures
from subscriptions.exports import csv_cell_safe

EDITABLE_STATUSES = (Issue.Status.DRAFT, Issue.Status.SCHEDULED)
PREVIEW_UNSUBSCRIBE_URL = "/u/preview/"
PREVIEW_PREFERENCES_URL = "/p/preview/"


def _issue(issue_id: int) -> Issue:
    return get_object_or_404(Issue.objects.prefetch_related("lists"), pk=issue_id)


@never_cache
@require_GET
@editor_required
def home(request):
    """Show the dashboard and the issues with their statuses."""
    issues = Issue.objects.prefetch_related("lists").order_by("-created_at", "-id")
    page = Paginator(issues, 25).get_page(request.GET.get("page"))
    figures = issues_figures(issue_ids=[issue.pk for issue in page.object_list])
    rows = [{"issue": issue, **figures[issue.pk]} for issue in page.object_list]
    context = {**dashboard_context(), "page": page, "rows": rows, "show_dashboard": True}
    return render(request, "issues/home.html", context)


def _form_page(request, *, issue: Issue | None):
    form = IssueForm(request.POST or None, instance=issue)
    saved = None
    if request.method == "POST" and form.is_valid():
        try:
            saved = services.issue_draft_save(form=form, actor=request.user)
        except ValidationError as exc:
            form.add_error(None, exc)
    if saved is not None:
        if form.cleaned_data.get("scheduled_at") and saved.status == Issue.Status.DRAFT:
            messages.info(request, "Saved. Confirm the send time to schedule the issue.")
            return redirect("editor:issue_schedule", issue_id=saved.pk)
        messages.success(request, "Saved.")
        return redirect("editor:issue_preview", issue_id=saved.pk)
    context = {"form": form, "issue": issue, "preview_slot": secrets.token_urlsafe(12)}
    return render(request, "issues/issue_form.html", context)


@require_http_methods(["GET", "POST"])
@editor_required
def issue_new(request):
    """Compose a new issue."""
    return _form_page(request, issue=None)


@require_http_methods(["GET", "POST"])
@editor_required
def issue_edit(request, issue_id: int):
    """Edit an issue that has not started sending."""
    issue = _issue(issue_id)
    if issue.status not in EDITABLE_STATUSES:
        messages.error(request, f"This issue is {issue.get_status_display().lower()}: it can no longer be edited.")
        return redirect("editor:issue_preview", issue_id=issue.pk)
    return _form_page(request, issue=issue)


def _form_errors(form) -> dict[str, list[str]]:
    return {field: [str(error) for error in errors] for field, errors in form.errors.items()}


UNTITLED = "(No title yet)"


PREVIEW_SLOT = re.compile(r"^[A-Za-z0-9_-]{8,40}$")
PREVIEW_KEEP_SECONDS = 600
PREVIEW_CSP = "script-src 'none'; object-src 'none'; base-uri 'none'"


def _preview_cache_key(user_id: int, slot: str) -> str:
    return f"draft-preview:{user_id}:{slot}"


@never_cache
@require_POST
@editor_required
def issue_draft_preview(request):
    """Render the posted compose form as a reader would get it, without saving it.

    Answers the subject and plain-text part as JSON, and keeps the HTML mail
    for a few minutes under the page's slot, for the preview frame to load
    from its own address (with its own Content-Security-Policy).
    """
    slot = request.POST.get("preview_slot", "")
    if not PREVIEW_SLOT.match(slot):
        return JsonResponse({"errors": {"__all__": ["The page is out of date: reload it."]}}, status=400)
    data = request.POST.copy()
    if not data.get("title", "").strip():
        data["title"] = UNTITLED
    form = DraftForm(data)
    if not form.is_valid():
        return JsonResponse({"errors": _form_errors(form)}, status=400)
    lists = form.cleaned_data["lists"]
    rendered = rendering.issue_render(form.save(commit=False), mailing_list=lists.order_by("id").first())
    links = _preview_links(request)
    html = rendering.rendered_personalize(rendered.html, **links)
    cache.set(_preview_cache_key(request.user.pk, slot), html, PREVIEW_KEEP_SECONDS)
    return JsonResponse(
        {
            "subject": rendered.subject,
            "text": rendering.rendered_personalize(rendered.text, **links),
            "html_url": reverse("editor:issue_draft_preview_html", kwargs={"slot": slot}),
        }
    )


@never_cache
@require_GET
@xframe_options_sameorigin
@editor_required
def issue_draft_preview_html(request, slot: str):
    """Answer the HTML mail last rendered for this user's compose page."""
    html = cache.get(_preview_cache_key(request.user.pk, slot)) if PREVIEW_SLOT.match(slot) else None
    if html is None:
        html = render_to_string("issues/draft_preview_empty.html")
    response = HttpResponse(html, content_type="text/html; charset=utf-8")
    response["Content-Security-Policy"] = PREVIEW_CSP
    return response


@never_cache
@require_POST
@editor_required
def issue_autosave(request, issue_id: int | None = None):
    """Save the compose form as a draft while the editor types; answer where it lives."""
    if issue_id is not None:
        _issue(issue_id)  # 404 for an unknown issue
    form = DraftForm(request.POST)
    if not form.is_valid():
        return JsonResponse({"errors": _form_errors(form)}, status=400)
    issue = services.issue_autosave(issue_id=issue_id, fields=form.cleaned_data, user=request.user)
    if issue is None:
        return JsonResponse(
            {"errors": {"__all__": ["This issue has started sending: it can no longer be edited."]}}, status=409
        )
    saved = timezone.localtime(issue.updated_at)
    return JsonResponse(
        {
            "issue_id": issue.pk,
            "edit_url": reverse("editor:issue_edit", kwargs={"issue_id": issue.pk}),
            "autosave_url": reverse("editor:issue_autosave", kwargs={"issue_id": issue.pk}),
            "saved_at": saved.isoformat(),
            "saved_at_display": f"{saved:%H:%M:%S}",
        }
    )


def _rendered(issue: Issue) -> rendering.RenderedIssue:
    return rendering.issue_rendered(issue)


def _preview_links(request) -> dict[str, str]:
    return {
        "unsubscribe_url": request.build_absolute_uri(PREVIEW_UNSUBSCRIBE_URL),
        "preferences_url": request.build_absolute_uri(PREVIEW_PREFERENCES_URL),
    }


def _preview_headers(issue: Issue) -> dict[str, str]:
    return issue_preview_headers(issue=issue)


def _preview_context(request, issue: Issue, test_form: TestSendForm) -> dict:
    """Return the preview page's context: the mail as a reader gets it, and the test-send form."""
    rendered = _rendered(issue)
    return {
        "issue": issue,
        "editable": issue.status in EDITABLE_STATUSES,
        "subject": rendered.subject,
        "text": rendering.rendered_personalize(rendered.text, **_preview_links(request)),
        "headers": _preview_headers(issue),
        "test_form": test_form,
        "placeholders_dropped": rendered.placeholders_dropped,
    }


@never_cache
@require_GET
@editor_required
def issue_preview(request, issue_id: int):
    """Show the mail as a reader gets it, with the actions the status allows."""
    issue = _issue(issue_id)
    form = TestSendForm(initial={"addresses": request.user.email or ""})
    return render(request, "issues/issue_preview.html", _preview_context(request, issue, form))


@never_cache
@require_GET
@xframe_options_sameorigin
@editor_required
def issue_preview_html(request, issue_id: int):
    """Answer the HTML mail alone, for the preview page's iframe."""
    issue = _issue(issue_id)
    html = rendering.rendered_personalize(_rendered(issue).html, **_preview_links(request))
    response = HttpResponse(html, content_type="text/html; charset=utf-8")
    # The mail is sanitised already; this keeps any slip from running here.
    response["Content-Security-Policy"] = PREVIEW_CSP
    return response


@require_POST
@editor_required
def issue_test_send(request, issue_id: int):
    """Mail a copy marked as a test to the typed addresses."""
    issue = _issue(issue_id)
    form = TestSendForm(request.POST)
    if not form.is_valid():
        return render(request, "issues/issue_preview.html", _preview_context(request, issue, form), status=400)
    if not issue.lists.exists():
        # The sender, footer and list headers come from the issue's first list.
        messages.error(request, "Choose at least one list before sending a test.")
        return redirect("editor:issue_preview", issue_id=issue.pk)
    addresses = form.cleaned_data["addresses"]
    services.issue_send_test(issue=issue, addresses=addresses)
    messages.success(request, f"A test copy is on its way to {', '.join(addresses)}.")
    return redirect("editor:issue_preview", issue_id=issue.pk)


@require_http_methods(["GET", "POST"])
@editor_required
def issue_schedule(request, issue_id: int):
    """Confirm a send time, showing how many readers will get the issue."""
    issue = _issue(issue_id)
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
    issue = _issue(issue_id)
    if services.issue_unschedule(issue=issue):
        messages.success(request, "No longer scheduled; the issue is a draft again.")
    else:
        messages.info(request, "This issue was not scheduled.")
    return redirect("editor:issue_preview", issue_id=issue.pk)


@require_http_methods(["GET", "POST"])
@editor_required
def issue_send(request, issue_id: int):
    """Confirm and start sending now."""
    issue = _issue(issue_id)
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
    if issue.status not in EDITABLE_STATUSES:
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
    issue = _issue(issue_id)
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
    issue = _issue(issue_id)
    progress = _progress(issue)
    progress["status_display"] = Issue.Status(progress["status"]).label
    return JsonResponse(progress)


def _control(action, done: str, not_done: str):
    @require_POST
    @editor_required
    def view(request, issue_id: int):
        issue = _issue(issue_id)
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
    issue = _issue(issue_id)
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


@never_cache
@require_GET
@editor_required
def issue_report(request, issue_id: int):
    """Show the issue's figures, failures and a chart of sends over time."""
    issue = _issue(issue_id)
    figures = selectors.issue_report_page(issue=issue)
    unit, points = figures["chart_unit"], figures["chart_points"]
    context = {
        **figures,
        "issue": issue,
        "retryable": services.issue_retryable_count(issue=issue),
        "retry_allowed": issue.status in services.RETRYABLE_STATUSES,
        "reasons": selectors.issue_failure_reasons(issue=issue),
        "failures": selectors.issue_failures(issue=issue)[:50],
        "chart": chart_svg_bars(points=points, title=f"Messages sent per {unit}"),
    }
    return render(request, "issues/issue_report.html", context)


class _Echo:
    def write(self, value):
        return value


@require_GET
@editor_required
def issue_failures_csv(request, issue_id: int):
    """Download every failed delivery of the issue with its reason."""
    issue = _issue(issue_id)
    writer = csv.writer(_Echo())
    rows = selectors.issue_failures(issue=issue).values_list("email", "status", "attempts", "last_error", "updated_at")

    def lines():
        yield writer.writerow(["email", "status", "attempts", "reason", "updated_at"])
        for email, status, attempts, reason, updated in rows.iterator():
            yield writer.writerow([csv_cell_safe(email), status, attempts, csv_cell_safe(reason), updated.isoformat()])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="issue-{issue.pk}-failures.csv"'
    return response


@require_POST
@editor_required
def issue_retry_failed(request, issue_id: int):
    """Put the transient failures back in the queue."""
    issue = _issue(issue_id)
    if issue.status == Issue.Status.PAUSED:
        messages.error(request, "This issue is paused: resume it first, then retry the failed ones.")
        return redirect(reverse("editor:issue_report", kwargs={"issue_id": issue.pk}))
    if issue.status == Issue.Status.CANCELLED:
        messages.error(request, "This issue was cancelled: its failed deliveries cannot be retried.")
        return redirect(reverse("editor:issue_report", kwargs={"issue_id": issue.pk}))
    count = services.issue_retry_failed(issue=issue)
    if count:
        messages.success(request, f"{count:,} temporary failures are queued again.")
    else:
        messages.info(request, "There were no temporary failures to retry.")
    return redirect(reverse("editor:issue_report", kwargs={"issue_id": issue.pk}))

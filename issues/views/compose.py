"""The compose page: write an issue, preview it as it is typed, save it as a draft while typing."""

from __future__ import annotations

import re
import secrets

from django.contrib import messages
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from dwvlist.access import editor_required
from issues import rendering, services
from issues.forms import DraftForm, IssueForm
from issues.models import Issue
from issues.views import issue_or_404
from issues.views.preview import PREVIEW_CSP, preview_links


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
    issue = issue_or_404(issue_id)
    if issue.status not in services.EDITABLE_STATUSES:
        messages.error(request, f"This issue is {issue.get_status_display().lower()}: it can no longer be edited.")
        return redirect("editor:issue_preview", issue_id=issue.pk)
    return _form_page(request, issue=issue)


def _form_errors(form) -> dict[str, list[str]]:
    return {field: [str(error) for error in errors] for field, errors in form.errors.items()}


UNTITLED = "(No title yet)"


PREVIEW_SLOT = re.compile(r"^[A-Za-z0-9_-]{8,40}$")
PREVIEW_KEEP_SECONDS = 600


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
    links = preview_links(request)
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
        issue_or_404(issue_id)  # 404 for an unknown issue
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

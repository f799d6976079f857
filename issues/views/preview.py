"""The preview page: the mail as a reader gets it, and a test copy to the editor's addresses."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_POST

from dwvlist.access import editor_required
from issues import rendering, services
from issues.delivery.messages import issue_preview_headers
from issues.forms import TestSendForm
from issues.models import Issue
from issues.views import issue_or_404

PREVIEW_UNSUBSCRIBE_URL = "/u/preview/"
PREVIEW_PREFERENCES_URL = "/p/preview/"
PREVIEW_CSP = "script-src 'none'; object-src 'none'; base-uri 'none'"


def preview_links(request) -> dict[str, str]:
    """Return the stand-ins for the reader's own links that a preview shows."""
    return {
        "unsubscribe_url": request.build_absolute_uri(PREVIEW_UNSUBSCRIBE_URL),
        "preferences_url": request.build_absolute_uri(PREVIEW_PREFERENCES_URL),
    }


def _preview_context(request, issue: Issue, test_form: TestSendForm) -> dict:
    """Return the preview page's context: the mail as a reader gets it, and the test-send form."""
    rendered = rendering.issue_rendered(issue)
    return {
        "issue": issue,
        "editable": issue.status in services.EDITABLE_STATUSES,
        "subject": rendered.subject,
        "text": rendering.rendered_personalize(rendered.text, **preview_links(request)),
        "headers": issue_preview_headers(issue=issue),
        "test_form": test_form,
        "placeholders_dropped": rendered.placeholders_dropped,
    }


@never_cache
@require_GET
@editor_required
def issue_preview(request, issue_id: int):
    """Show the mail as a reader gets it, with the actions the status allows."""
    issue = issue_or_404(issue_id)
    form = TestSendForm(initial={"addresses": request.user.email or ""})
    return render(request, "issues/issue_preview.html", _preview_context(request, issue, form))


@never_cache
@require_GET
@xframe_options_sameorigin
@editor_required
def issue_preview_html(request, issue_id: int):
    """Answer the HTML mail alone, for the preview page's iframe."""
    issue = issue_or_404(issue_id)
    html = rendering.rendered_personalize(rendering.issue_rendered(issue).html, **preview_links(request))
    response = HttpResponse(html, content_type="text/html; charset=utf-8")
    # The mail is sanitised already; this keeps any slip from running here.
    response["Content-Security-Policy"] = PREVIEW_CSP
    return response


@require_POST
@editor_required
def issue_test_send(request, issue_id: int):
    """Mail a copy marked as a test to the typed addresses."""
    issue = issue_or_404(issue_id)
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

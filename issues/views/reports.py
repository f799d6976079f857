"""The dashboard with every issue's figures, and each issue's report: failures, their CSV, a retry."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from dwvlist.access import editor_required
from dwvlist.charts import chart_svg_bars
from issues import selectors, services
from issues.models import Issue
from issues.selectors import dashboard_context, issues_figures
from issues.views import issue_or_404
from subscriptions.exports import csv_cell_safe, csv_lines


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


@never_cache
@require_GET
@editor_required
def issue_report(request, issue_id: int):
    """Show the issue's figures, failures and a chart of sends over time."""
    issue = issue_or_404(issue_id)
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


@require_GET
@editor_required
def issue_failures_csv(request, issue_id: int):
    """Download every failed delivery of the issue with its reason."""
    issue = issue_or_404(issue_id)
    rows = selectors.issue_failures(issue=issue).values_list("email", "status", "attempts", "last_error", "updated_at")

    def lines():
        yield ["email", "status", "attempts", "reason", "updated_at"]
        for email, status, attempts, reason, updated in rows.iterator():
            yield [csv_cell_safe(email), status, attempts, csv_cell_safe(reason), updated.isoformat()]

    response = StreamingHttpResponse(csv_lines(lines()), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="issue-{issue.pk}-failures.csv"'
    return response


@require_POST
@editor_required
def issue_retry_failed(request, issue_id: int):
    """Put the transient failures back in the queue."""
    issue = issue_or_404(issue_id)
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

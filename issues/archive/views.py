"""The public archive: lists, their issues by month, each issue as it was mailed."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.shortcuts import render
from django.views.decorators.http import require_GET

from issues import rendering
from issues.archive import selectors as archive_selectors


@require_GET
def archive_index(request):
    """List the lists whose past issues anyone may read."""
    return render(request, "issues/archive_index.html", {"lists": archive_selectors.archive_lists()})


@require_GET
def archive_list(request, list_slug: str):
    """Show one list's sent issues, newest first, paginated and searchable."""
    mailing_list = archive_selectors.archive_list_get(slug=list_slug)
    query = request.GET.get("q", "")[:200]
    issues = archive_selectors.archive_issues(mailing_list=mailing_list, query=query)
    page = Paginator(issues, 20).get_page(request.GET.get("page"))
    context = {
        "mailing_list": mailing_list,
        "query": query.strip(),
        "page": page,
        "entries": archive_selectors.archive_entries(mailing_list=mailing_list, issues=list(page.object_list)),
    }
    return render(request, "issues/archive_list.html", context)


@require_GET
def archive_issue(request, list_slug: str, year: int, month: int, issue_slug: str):
    """Show one sent issue as it was mailed, without anything per reader."""
    mailing_list = archive_selectors.archive_list_get(slug=list_slug)
    entry = archive_selectors.archive_issue_get(mailing_list=mailing_list, year=year, month=month, slug=issue_slug)
    context = {
        "mailing_list": mailing_list,
        "entry": entry,
        "issue": entry.issue,
        "title": entry.issue.snapshot_subject or entry.issue.title,
        "article_html": rendering.issue_render_archive(entry.issue),
    }
    return render(request, "issues/archive_issue.html", context)

"""The public archive: lists, their issues by month, each issue as it was mailed."""

from __future__ import annotations

from django.conf import settings
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from issues import rendering
from issues.archive import selectors as archive_selectors
from subscriptions.forms import SubscribeForm


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
    issue = entry.issue
    older, newer = archive_selectors.archive_neighbours(mailing_list=mailing_list, issue=issue)
    article_html = rendering.issue_render_archive(issue)
    context = {
        "mailing_list": mailing_list,
        "entry": entry,
        "issue": issue,
        "title": issue.snapshot_subject or issue.title,
        "article_html": article_html,
        "description": rendering.archive_description(issue=issue, article_html=article_html),
        "page_url": settings.SITE_URL + entry.path,
        "older": older,
        "newer": newer,
        "letters": archive_selectors.archive_issue_letters(entry=entry),
        "subscribe_form": SubscribeForm(initial={"lists": [mailing_list.slug]}),
    }
    return render(request, "issues/archive_issue.html", context)


@require_GET
def archive_issue_link(request, list_slug: str, issue_id: int):
    """Send the mail's "read it on the web" link on to the issue's permanent archive address."""
    mailing_list = archive_selectors.archive_list_get(slug=list_slug)
    issue = archive_selectors.archive_issues(mailing_list=mailing_list).filter(pk=issue_id).first()
    if issue is None:
        raise Http404("This issue is not in the archive (yet).")
    (entry,) = archive_selectors.archive_entries(mailing_list=mailing_list, issues=[issue])
    return redirect(entry.path, permanent=False)

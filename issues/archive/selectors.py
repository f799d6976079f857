"""What the public archive shows: public lists, their sent issues, the address of each."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db import connection
from django.db.models import Q, QuerySet
from django.http import Http404
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from issues.comments.services import comments_published
from issues.models import Comment, Issue
from subscriptions.models import MailingList


def archive_lists() -> QuerySet[MailingList]:
    """Return the lists whose archive anyone may read."""
    return MailingList.objects.filter(is_public=True, archive_enabled=True).order_by("name")


def archive_list_get(*, slug: str) -> MailingList:
    """Return the list with a readable archive, or raise Http404."""
    try:
        return archive_lists().get(slug=slug)
    except MailingList.DoesNotExist:
        raise Http404("No such archive.") from None


# The archive is in English: words are stemmed and stop words ignored.
SEARCH_CONFIG = "english"
_PHRASE_OR_WORD = re.compile(r'"([^"]*)"|(\S+)')


def archive_search_terms(query: str) -> list[str]:
    """Return the quoted phrases and the single words of a search, in order, without repeats."""
    terms: list[str] = []
    for phrase, word in _PHRASE_OR_WORD.findall(query):
        term = " ".join((phrase or word).split()).strip('"')
        if term and term.lower() not in (t.lower() for t in terms):
            terms.append(term)
    return terms[:20]


def _search(issues: QuerySet[Issue], query: str) -> QuerySet[Issue]:
    if connection.vendor == "postgresql":
        # Full-text search: words stemmed ("strikes" finds "strike"), "quoted
        # phrases" in order, -word excluded, as websearch_to_tsquery reads them.
        vector = SearchVector("title", "subtitle", "byline", "body", config=SEARCH_CONFIG)
        search = SearchQuery(query, search_type="websearch", config=SEARCH_CONFIG)
        return issues.annotate(search=vector).filter(search=search)
    # SQLite: every phrase and word must appear somewhere, as written.
    for term in archive_search_terms(query):
        issues = issues.filter(
            Q(title__icontains=term) | Q(subtitle__icontains=term) | Q(byline__icontains=term) | Q(body__icontains=term)
        )
    return issues


def archive_issues(*, mailing_list: MailingList, query: str = "") -> QuerySet[Issue]:
    """Return the list's sent issues, newest first, optionally searched."""
    issues = Issue.objects.filter(
        lists=mailing_list, status=Issue.Status.SENT, sent_at__isnull=False, archive_hidden_at__isnull=True
    )
    query = query.strip()
    if query:
        issues = _search(issues, query)
    return issues.order_by("-sent_at", "-id").distinct()


def issue_base_slug(issue: Issue) -> str:
    """Return the issue's slug, or one made from its title when it has none."""
    return issue.slug or slugify(issue.title)[:100].strip("-") or "issue"


@dataclass(frozen=True)
class ArchiveEntry:
    issue: Issue
    slug: str
    list_slug: str

    @property
    def year(self) -> str:
        return f"{timezone.localtime(self.issue.sent_at).year:04d}"

    @property
    def month(self) -> str:
        return f"{timezone.localtime(self.issue.sent_at).month:02d}"

    @property
    def path(self) -> str:
        """Return the permanent archive path of the issue."""
        kwargs = {"list_slug": self.list_slug, "year": self.year, "month": self.month, "issue_slug": self.slug}
        return reverse("archive:issue", kwargs=kwargs)


def _month_range(year: int, month: int) -> tuple[datetime.datetime, datetime.datetime]:
    zone = timezone.get_current_timezone()
    start = datetime.datetime(year, month, 1, tzinfo=zone)
    end = datetime.datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=zone)
    return start, end


def _month_slugs(*, mailing_list: MailingList, year: int, month: int) -> list[ArchiveEntry]:
    """Return the month's sent issues, oldest first, each with its unique slug.

    The first issue of a month with a given slug keeps it; later ones get
    their id appended, so every URL stays the same once published.
    """
    start, end = _month_range(year, month)
    issues = (
        archive_issues(mailing_list=mailing_list).filter(sent_at__gte=start, sent_at__lt=end).order_by("sent_at", "id")
    )
    seen: set[str] = set()
    entries = []
    for issue in issues:
        base = issue_base_slug(issue)
        slug = base if base not in seen else f"{base}-{issue.pk}"
        seen.add(base)
        entries.append(ArchiveEntry(issue=issue, slug=slug, list_slug=mailing_list.slug))
    return entries


def archive_entries(*, mailing_list: MailingList, issues: list[Issue]) -> list[ArchiveEntry]:
    """Return the issues with the slugs of their permanent archive URLs."""
    slugs: dict[int, str] = {}
    months = {(timezone.localtime(i.sent_at).year, timezone.localtime(i.sent_at).month) for i in issues}
    for year, month in months:
        for entry in _month_slugs(mailing_list=mailing_list, year=year, month=month):
            slugs[entry.issue.pk] = entry.slug
    return [
        ArchiveEntry(issue=issue, slug=slugs.get(issue.pk, issue_base_slug(issue)), list_slug=mailing_list.slug)
        for issue in issues
    ]


def archive_issue_get(*, mailing_list: MailingList, year: int, month: int, slug: str) -> ArchiveEntry:
    """Return the sent issue at a permanent archive URL, or raise Http404."""
    if not (1 <= month <= 12 and 1970 <= year <= 9999):
        raise Http404("No such issue.")
    for entry in _month_slugs(mailing_list=mailing_list, year=year, month=month):
        if entry.slug == slug:
            return entry
    raise Http404("No such issue.")


@dataclass(frozen=True)
class Letter:
    """A reader's letter published under an issue, as the archive shows it (never their address)."""

    comment: Comment
    entry: ArchiveEntry

    @property
    def writer(self) -> str:
        return " ".join(self.comment.sender_name.split()) or "A reader"

    @property
    def anchor(self) -> str:
        return f"letter-{self.comment.pk}"

    @property
    def path(self) -> str:
        return f"{self.entry.path}#{self.anchor}"


def archive_letters(*, entries: list[ArchiveEntry]) -> list[Letter]:
    """Return the letters published under these archive entries' issues, oldest first per issue."""
    by_issue = {entry.issue.pk: entry for entry in entries}
    if not by_issue:
        return []
    comments = Comment.objects.filter(issue_id__in=by_issue, published=True).order_by("issue_id", "received_at", "id")
    return [Letter(comment=c, entry=by_issue[c.issue_id]) for c in comments]


def archive_issue_letters(*, entry: ArchiveEntry) -> list[Letter]:
    """Return the letters published under one archived issue, oldest first."""
    return [Letter(comment=c, entry=entry) for c in comments_published(issue=entry.issue)]


def archive_neighbours(*, mailing_list: MailingList, issue: Issue) -> tuple[ArchiveEntry | None, ArchiveEntry | None]:
    """Return the list's sent issue just before this one and the one just after (None at either end)."""
    issues = archive_issues(mailing_list=mailing_list)
    older = issues.filter(Q(sent_at__lt=issue.sent_at) | Q(sent_at=issue.sent_at, id__lt=issue.pk)).first()
    newer = (
        issues.filter(Q(sent_at__gt=issue.sent_at) | Q(sent_at=issue.sent_at, id__gt=issue.pk))
        .order_by("sent_at", "id")
        .first()
    )
    found = {e.issue.pk: e for e in archive_entries(mailing_list=mailing_list, issues=[i for i in (older, newer) if i])}
    return (found.get(older.pk) if older else None, found.get(newer.pk) if newer else None)

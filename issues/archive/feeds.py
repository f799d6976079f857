"""The Atom feed of a list's archive."""

from __future__ import annotations

from django.conf import settings
from django.contrib.syndication.views import Feed
from django.urls import reverse
from django.utils.feedgenerator import Atom1Feed
from django.utils.html import linebreaks

from issues import rendering
from issues.archive import selectors as archive_selectors
from issues.archive.selectors import ArchiveEntry as Entry
from issues.archive.selectors import Letter
from subscriptions.models import MailingList

FEED_LENGTH = 20


class ArchiveFeed(Feed):
    """The latest sent issues of a list with a public archive, in full."""

    feed_type = Atom1Feed

    def get_object(self, request, list_slug: str) -> MailingList:
        return archive_selectors.archive_list_get(slug=list_slug)

    def title(self, obj: MailingList) -> str:
        return obj.name

    def subtitle(self, obj: MailingList) -> str:
        return obj.description or f"The latest issues of {obj.name}."

    # Absolute links from SITE_URL, not from the sites framework's domain,
    # so the feed names the same address as the mails' List-Archive.
    def link(self, obj: MailingList) -> str:
        return settings.SITE_URL + reverse("archive:list", kwargs={"list_slug": obj.slug})

    def feed_url(self, obj: MailingList) -> str:
        return settings.SITE_URL + reverse("archive:feed", kwargs={"list_slug": obj.slug})

    def items(self, obj: MailingList) -> list[Entry | Letter]:
        """Return the latest issues and the letters published under them, newest first."""
        issues = list(archive_selectors.archive_issues(mailing_list=obj)[:FEED_LENGTH])
        entries = archive_selectors.archive_entries(mailing_list=obj, issues=issues)
        letters = archive_selectors.archive_letters(entries=entries)
        return sorted([*entries, *letters], key=self.item_pubdate, reverse=True)

    def item_title(self, item: Entry | Letter) -> str:
        if isinstance(item, Letter):
            return f"Letter from {item.writer} on “{item.entry.issue.snapshot_subject or item.entry.issue.title}”"
        return item.issue.snapshot_subject or item.issue.title

    def item_description(self, item: Entry | Letter) -> str:
        if isinstance(item, Letter):
            return linebreaks(item.comment.text, autoescape=True) if item.comment.text else item.comment.html
        return rendering.issue_render_archive(item.issue)

    def item_link(self, item: Entry | Letter) -> str:
        return settings.SITE_URL + item.path

    def item_guid(self, item: Entry | Letter) -> str:
        return self.item_link(item)

    def item_author_name(self, item: Entry | Letter) -> str | None:
        if isinstance(item, Letter):
            return item.writer
        return item.issue.byline or None

    def item_categories(self, item: Entry | Letter) -> list[str]:
        return ["letter"] if isinstance(item, Letter) else ["issue"]

    def item_pubdate(self, item: Entry | Letter):
        if isinstance(item, Letter):
            return item.comment.published_at or item.comment.received_at
        return item.issue.sent_at

    def item_updateddate(self, item: Entry | Letter):
        return self.item_pubdate(item)

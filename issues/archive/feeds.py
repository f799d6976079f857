"""The Atom feed of a list's archive."""

from __future__ import annotations

from django.conf import settings
from django.contrib.syndication.views import Feed
from django.urls import reverse
from django.utils.feedgenerator import Atom1Feed

from issues import rendering
from issues.archive import selectors as archive_selectors
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

    def items(self, obj: MailingList) -> list[archive_selectors.ArchiveEntry]:
        issues = list(archive_selectors.archive_issues(mailing_list=obj)[:FEED_LENGTH])
        return archive_selectors.archive_entries(mailing_list=obj, issues=issues)

    def item_title(self, item: archive_selectors.ArchiveEntry) -> str:
        return item.issue.snapshot_subject or item.issue.title

    def item_description(self, item: archive_selectors.ArchiveEntry) -> str:
        return rendering.issue_render_archive(item.issue)

    def item_link(self, item: archive_selectors.ArchiveEntry) -> str:
        return settings.SITE_URL + item.path

    def item_guid(self, item: archive_selectors.ArchiveEntry) -> str:
        return self.item_link(item)

    def item_author_name(self, item: archive_selectors.ArchiveEntry) -> str | None:
        return item.issue.byline or None

    def item_pubdate(self, item: archive_selectors.ArchiveEntry):
        return item.issue.sent_at

    def item_updateddate(self, item: archive_selectors.ArchiveEntry):
        return item.issue.sent_at

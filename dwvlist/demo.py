"""Demo data for `make run`: a list, two staff logins, readers and an issue.

Loading is idempotent: rows that exist are left exactly as they are, so
running it twice changes nothing the second time.
"""

from __future__ import annotations

from datetime import timedelta

from django.apps import apps as django_apps
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.contrib.sites.models import Site
from django.db import transaction
from django.utils import timezone

from issues.models import Issue
from subscriptions.models import MailingList, Subscriber, Subscription
from subscriptions.roles import roles_ensure

SITE_NAME = "Detroit Workers' Voice"
LIST_SLUG = "dwv"
LOGINS = {
    "admin": {"password": "dwv-admin-demo-2026", "group": "Admins", "superuser": True},
    "editor": {"password": "dwv-editor-demo-2026", "group": "Editors", "superuser": False},
}
SAMPLE_TITLE = "Why we publish this list"
SAMPLE_BODY = """\
For ten years the Detroit Workers' Voice has gone out to anyone who asks
for it. This list is how it reaches you: one email per article, the same
day it is written, with nothing in between.

Each issue is plain text first. Links stay visible, like
https://example.org/archive/ or <https://example.org/about/>, so you can
read them before you follow them.

We read every reply. Write back to tell us what we got wrong, what we
missed, and what you want us to cover next. A reply to any issue reaches
the editors, and *nobody else*.

If this list stops being useful to you, the unsubscribe link at the end of
every email works in one click, no questions asked.
"""


def _site_update() -> None:
    domain = settings.SITE_URL.split("://", 1)[1]
    site, _ = Site.objects.get_or_create(id=settings.SITE_ID, defaults={"domain": domain, "name": SITE_NAME})
    if (site.domain, site.name) == ("example.com", "example.com"):
        # Django's placeholder, created by the sites migration.
        site.domain, site.name = domain, SITE_NAME
        site.save()


def _staff_ensure() -> None:
    for username, login in LOGINS.items():
        user, created = User.objects.get_or_create(
            username=username,
            defaults={
                "email": f"{username}@example.org",
                "is_staff": True,
                "is_superuser": login["superuser"],
            },
        )
        if created:
            user.set_password(login["password"])
            user.save(update_fields=["password"])
            group = Group.objects.filter(name=login["group"]).first()
            if group:
                user.groups.add(group)


def _readers_ensure(mailing_list: MailingList, count: int) -> None:
    now = timezone.now()
    emails = [f"reader{n:05d}@example.org" for n in range(1, count + 1)]
    Subscriber.objects.bulk_create(
        [Subscriber(email=email, name=f"Reader {n}") for n, email in enumerate(emails, start=1)],
        ignore_conflicts=True,
        batch_size=1000,
    )
    ids = Subscriber.objects.filter(email__in=emails).values_list("id", flat=True).iterator(chunk_size=2000)
    Subscription.objects.bulk_create(
        [
            Subscription(
                subscriber_id=subscriber_id,
                mailing_list=mailing_list,
                status=Subscription.Status.ACTIVE,
                consent_source=Subscription.ConsentSource.ADMIN,
                consent_detail="demo data",
                consented_at=now - timedelta(days=30),
                confirmed_at=now - timedelta(days=30),
            )
            for subscriber_id in ids
        ],
        ignore_conflicts=True,
        batch_size=1000,
    )


@transaction.atomic
def demo_load(*, readers: int = 2000) -> MailingList:
    """Create the demo rows that are missing and return the demo list."""
    _site_update()
    roles_ensure(django_apps)
    mailing_list, _ = MailingList.objects.get_or_create(
        slug=LIST_SLUG,
        defaults={
            "name": SITE_NAME,
            "description": "Articles from the Detroit Workers' Voice, one email each, as they are written.",
            "from_name": SITE_NAME,
            "from_email": "list@example.org",
            "reply_to": "editors@example.org",
            "footer_text": "Detroit Workers' Voice · write to editors@example.org",
            "subscribe_by_mail": True,
        },
    )
    _staff_ensure()
    _readers_ensure(mailing_list, readers)
    if not Issue.objects.filter(title=SAMPLE_TITLE).exists():
        issue = Issue.objects.create(
            title=SAMPLE_TITLE,
            subtitle="A note from the editors",
            byline="The editors",
            body=SAMPLE_BODY,
            slug="why-we-publish-this-list",
            author=User.objects.filter(username="editor").first(),
        )
        issue.lists.add(mailing_list)
    return mailing_list

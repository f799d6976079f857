"""Build readers and issues for the delivery tests, fast (bulk inserts)."""

from __future__ import annotations

from django.utils import timezone

from issues.models import Issue
from subscriptions.models import MailingList, Subscriber, Subscription


def list_make(slug: str, **fields) -> MailingList:
    defaults = {
        "name": f"List {slug}",
        "from_name": "Detroit Workers' Voice",
        "from_email": f"{slug}@lists.example.org",
        "reply_to": "editors@example.org",
        "footer_text": "Write to editors@example.org",
    }
    return MailingList.objects.create(slug=slug, **{**defaults, **fields})


def readers_make(mailing_list: MailingList, count: int, *, start: int = 0, status: str = "active") -> list[int]:
    """Create `count` readers subscribed to the list; return their ids."""
    now = timezone.now()
    emails = [f"reader{n:06d}@example.org" for n in range(start, start + count)]
    Subscriber.objects.bulk_create([Subscriber(email=e) for e in emails], ignore_conflicts=True, batch_size=2000)
    ids = list(Subscriber.objects.filter(email__in=emails).values_list("id", flat=True))
    Subscription.objects.bulk_create(
        [
            Subscription(
                subscriber_id=i,
                mailing_list=mailing_list,
                status=status,
                consent_source="admin",
                confirmed_at=now if status == "active" else None,
                unsubscribed_at=now if status == "unsubscribed" else None,
                unsubscribe_source="admin" if status == "unsubscribed" else "",
            )
            for i in ids
        ],
        batch_size=2000,
    )
    return ids


def issue_make(*lists: MailingList, title: str = "Plant closings and what to do") -> Issue:
    issue = Issue.objects.create(
        title=title,
        byline="The editors",
        body="First paragraph with a link https://example.org/a.\n\nSecond paragraph, *emphasis*.\n" * 20,
    )
    issue.lists.set(lists)
    return issue

"""Build readers and issues for the delivery tests, fast (bulk inserts)."""

from __future__ import annotations

from django.utils import timezone

from issues import services
from issues.delivery import batch, ledger
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


def ledger_writer_dies_on_second_chunk(monkeypatch, *, chunk: int) -> None:
    """Write the ledger `chunk` readers at a time, the writer failing on its second chunk, as if killed."""

    monkeypatch.setattr(ledger, "LEDGER_CHUNK", chunk)
    real_chunk = ledger._ledger_chunk_write
    calls = []

    def writer_dies_on_the_second_chunk(*args):
        calls.append(args)
        if len(calls) == 2:
            monkeypatch.setattr(ledger, "_ledger_chunk_write", real_chunk)  # whoever writes next succeeds
            raise OSError("the process writing the ledger was killed")
        return real_chunk(*args)

    monkeypatch.setattr(ledger, "_ledger_chunk_write", writer_dies_on_the_second_chunk)


def recipients_unsaved(count: int, *, list_name: str = "News") -> list:
    """Return `count` readers of an unsaved list and issue (pk 3 and 7), made by the engine's recipient_for."""
    from issues.delivery.messages import recipient_for

    news = MailingList(pk=3, slug="news", name=list_name, from_email="news@lists.example.org", archive_enabled=True)
    issue = Issue(pk=7)
    return [
        recipient_for(
            issue=issue,
            delivery_id=1000 + n,
            subscriber_id=500 + n,
            email=f"reader{n:04d}@example.org",
            mailing_list=news,
            nonce=f"{n:012d}",
        )
        for n in range(count)
    ]


def issue_start_here(issue: Issue) -> None:
    """Start the issue without queueing tasks (the test drives the batches); refresh it with its ledger."""
    Issue.objects.filter(pk=issue.pk).update(status="sending", started_at=timezone.now())
    issue.refresh_from_db()
    services.issue_freeze(issue=issue)
    ledger.ledger_write(issue=issue)
    issue.refresh_from_db()  # the ledger's id bounds and when it was written


def issue_drain(issue: Issue, limit: int = 200) -> None:
    """Send the issue's batches in this process until it is done."""
    for _ in range(limit):
        if batch.batch_send(issue_id=issue.pk).done:
            return
    raise AssertionError("the issue did not finish")

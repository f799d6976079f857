"""Reads for the editor area's dashboard, bounded so they stay fast at a million readers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.db.models.functions import Lower, TruncWeek
from django.utils import timezone

from dwvlist.charts import chart_svg_lines
from subscriptions.addresses import email_hash
from subscriptions.models import MailingList, Subscriber, Subscription, Suppression

DASHBOARD_WEEKS = 12


def _week_starts(now, weeks: int) -> list:
    this_week = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    this_week -= timedelta(days=this_week.weekday())
    return [this_week - timedelta(weeks=n) for n in range(weeks - 1, -1, -1)]


def _by_week(queryset, field: str, since, *, by_list: bool = False) -> dict:
    """Return counts grouped by week (and list), from rows whose field is at or after since."""
    keys = ["week", "mailing_list_id"] if by_list else ["week"]
    rows = (
        queryset.filter(**{f"{field}__gte": since})
        .annotate(week=TruncWeek(field))
        .values(*keys)
        .annotate(n=Count("id"))
        .order_by()
    )
    out: dict = {}
    for row in rows:
        week = timezone.localtime(row["week"]).date() if hasattr(row["week"], "tzinfo") else row["week"]
        key = (week, row["mailing_list_id"]) if by_list else week
        out[key] = out.get(key, 0) + row["n"]
    return out


def list_growth(*, weeks: int = DASHBOARD_WEEKS, now=None) -> dict[str, list[tuple[str, float]]]:
    """Return each list's active readers at the end of each of the last weeks.

    Walks back from today's count (an index-only count per list) with the
    weekly confirmations and unsubscribes, so no query reads more than the
    window.
    """
    now = now or timezone.now()
    starts = _week_starts(now, weeks)
    since = starts[0]
    lists = list(MailingList.objects.order_by("name").values_list("pk", "name"))
    active = dict(
        Subscription.objects.filter(status=Subscription.Status.ACTIVE)
        .values_list("mailing_list_id")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("mailing_list_id", "n")
    )
    joined = _by_week(Subscription.objects.filter(confirmed_at__isnull=False), "confirmed_at", since, by_list=True)
    left = _by_week(
        Subscription.objects.filter(status=Subscription.Status.UNSUBSCRIBED, confirmed_at__isnull=False),
        "unsubscribed_at",
        since,
        by_list=True,
    )
    series = {}
    for list_id, name in lists:
        count = active.get(list_id, 0)
        points = []
        for start in reversed(starts):
            points.append((start.strftime("%b %d"), float(count)))
            week = start.date()
            count = count - joined.get((week, list_id), 0) + left.get((week, list_id), 0)
        series[name] = list(reversed(points))
    return series


def signups_and_unsubscribes(*, weeks: int = DASHBOARD_WEEKS, now=None) -> list[dict]:
    """Return per week: new subscriptions (any list, any state now) and unsubscribes."""
    now = now or timezone.now()
    starts = _week_starts(now, weeks)
    signups = _by_week(Subscription.objects.all(), "created_at", starts[0])
    unsubscribes = _by_week(
        Subscription.objects.filter(status=Subscription.Status.UNSUBSCRIBED), "unsubscribed_at", starts[0]
    )
    return [
        {
            "week": start.date(),
            "label": start.strftime("%b %d"),
            "signups": signups.get(start.date(), 0),
            "unsubscribes": unsubscribes.get(start.date(), 0),
        }
        for start in starts
    ]


def readers_dashboard(*, now=None) -> dict:
    """Return the readers' part of the editor home's dashboard: growth charts and the suppression count."""
    weeks = signups_and_unsubscribes(now=now)
    return {
        "dashboard_growth_chart": chart_svg_lines(series=list_growth(now=now), title="Active readers per list"),
        "dashboard_weekly_chart": chart_svg_lines(
            series={
                "Signups": [(w["label"], w["signups"]) for w in weeks],
                "Unsubscribes": [(w["label"], w["unsubscribes"]) for w in weeks],
            },
            title="Signups and unsubscribes per week",
        ),
        "dashboard_weeks": weeks,
        "dashboard_suppressed": Suppression.objects.count(),
    }


# The subscribers screen ------------------------------------------------------------------

READERS_PAGE = 50
# Below this a substring has no trigram to look up: such short searches match the start.
SEARCH_MIN_SUBSTRING = 3
READER_HISTORY_ROWS = 100


@dataclass(frozen=True)
class ReaderFilters:
    query: str = ""
    list_id: int | None = None
    status: str = ""  # a subscription status, or "suppressed"
    source: str = ""  # a consent source
    joined_from: date | None = None
    joined_to: date | None = None


@dataclass(frozen=True)
class ReaderPage:
    readers: list[Subscriber]
    newer: int | None  # pass as ?before= to see the page of newer readers
    older: int | None  # pass as ?after= to see the page of older readers
    short_query: bool  # the search matched the start of addresses and names only


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def readers_filtered(*, filters: ReaderFilters) -> tuple[QuerySet[Subscriber], bool]:
    """Return the readers matching the filters (unordered), and whether the search was a prefix one.

    A search of three characters or more finds any part of an address or
    name (a trigram index on PostgreSQL keeps this fast at a million rows);
    a shorter one matches the start only, through the prefix indexes.
    """
    readers = Subscriber.objects.all()
    query = filters.query.strip()
    short = 0 < len(query) < SEARCH_MIN_SUBSTRING
    if short:
        readers = readers.annotate(email_lower=Lower("email"), name_lower=Lower("name")).filter(
            Q(email_lower__startswith=query.lower()) | Q(name_lower__startswith=query.lower())
        )
    elif query:
        readers = readers.filter(Q(email__icontains=query) | Q(name__icontains=query))
    subscriptions = Subscription.objects.filter(subscriber=OuterRef("pk"))
    narrowed = False
    if filters.list_id:
        subscriptions, narrowed = subscriptions.filter(mailing_list_id=filters.list_id), True
    if filters.status in Subscription.Status.values:
        subscriptions, narrowed = subscriptions.filter(status=filters.status), True
    if filters.source:
        subscriptions, narrowed = subscriptions.filter(consent_source=filters.source), True
    if narrowed:
        readers = readers.filter(Exists(subscriptions))
    if filters.status == "suppressed":
        # The suppression list is small; its addresses are stored as normalised.
        readers = readers.filter(Exists(Suppression.objects.filter(email__iexact=OuterRef("email"))))
    if filters.joined_from:
        readers = readers.filter(created_at__gte=_day_start(filters.joined_from))
    if filters.joined_to:
        readers = readers.filter(created_at__lt=_day_start(filters.joined_to + timedelta(days=1)))
    return readers, short


def readers_page(
    *, filters: ReaderFilters, after: int | None = None, before: int | None = None, size: int = READERS_PAGE
) -> ReaderPage:
    """Return one page of readers, newest first, by keyset on the id: no COUNT over a big table."""
    readers, short = readers_filtered(filters=filters)
    if before is not None:
        rows = list(readers.filter(pk__gt=before).order_by("pk")[: size + 1])
        more_newer = len(rows) > size
        rows = rows[:size][::-1]
        newer = rows[0].pk if rows and more_newer else None
        older = rows[-1].pk if rows else None
        return ReaderPage(rows, newer, older, short)
    if after is not None:
        readers = readers.filter(pk__lt=after)
    rows = list(readers.order_by("-pk")[: size + 1])
    more_older = len(rows) > size
    rows = rows[:size]
    newer = rows[0].pk if rows and after is not None else None
    older = rows[-1].pk if rows and more_older else None
    return ReaderPage(rows, newer, older, short)


def reader_history(*, subscriber: Subscriber) -> dict:
    """Return what the reader's page shows: subscriptions with consent, suppression, deliveries, events, replies."""
    from issues.models import Comment, Delivery, DeliveryEvent  # issues depends on subscriptions

    subscriptions = list(
        subscriber.subscriptions.select_related("mailing_list", "unsubscribe_issue").order_by("mailing_list__name")
    )
    deliveries = list(
        Delivery.objects.filter(subscriber=subscriber)
        .select_related("issue", "mailing_list")
        .order_by("-id")[:READER_HISTORY_ROWS]
    )
    events = list(
        DeliveryEvent.objects.filter(delivery__subscriber=subscriber)
        .select_related("delivery__issue", "delivery__mailing_list")
        .order_by("-received_at", "-id")[:READER_HISTORY_ROWS]
    )
    # Opens and clicks are shown only where the list records them.
    events = [
        e
        for e in events
        if e.event_type not in ("opened", "clicked")
        or (e.delivery.mailing_list and e.delivery.mailing_list.tracking_enabled)
    ]
    replies = list(
        Comment.objects.filter(Q(subscriber=subscriber) | Q(sender_email__iexact=subscriber.email))
        .select_related("issue")
        .order_by("-received_at")[:READER_HISTORY_ROWS]
    )
    suppression = Suppression.objects.filter(email_hash=email_hash(subscriber.email)).first()
    return {
        "subscriptions": subscriptions,
        "suppression": suppression,
        "deliveries": deliveries,
        "events": events,
        "replies": replies,
        "summary": reader_summary(subscriptions=subscriptions, suppression=suppression),
        "pending": any(s.status == Subscription.Status.PENDING for s in subscriptions),
    }


def reader_summary(*, subscriptions: list[Subscription], suppression: Suppression | None) -> list[str]:
    """Return, in plain words, whether the reader gets mail and why not."""
    lines = []
    if suppression is not None:
        when = timezone.localtime(suppression.created_at)
        lines.append(
            f"Never mailed: on the suppression list since {when:%d %b %Y} ({suppression.get_reason_display().lower()})."
        )
    for s in subscriptions:
        name = s.mailing_list.name
        if s.status == Subscription.Status.ACTIVE:
            lines.append(f"Gets {name}" + (" (but suppressed)." if suppression else "."))
        elif s.status == Subscription.Status.PENDING:
            lines.append(f"Not yet confirmed {name}: asked {timezone.localtime(s.consented_at):%d %b %Y}.")
        else:
            how = s.get_unsubscribe_source_display().lower()
            after = f" after “{s.unsubscribe_issue.title}”" if s.unsubscribe_issue else ""
            lines.append(f"Left {name} on {timezone.localtime(s.unsubscribed_at):%d %b %Y} ({how}){after}.")
    if not subscriptions:
        lines.append("On no list.")
    return lines

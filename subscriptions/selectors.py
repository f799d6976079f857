"""Reads for the editor area's dashboard, bounded so they stay fast at a million readers."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count
from django.db.models.functions import TruncWeek
from django.utils import timezone

from dwvlist.charts import chart_svg_lines
from subscriptions.models import MailingList, Subscription, Suppression

DASHBOARD_WEEKS = 12
DASHBOARD_ISSUES = 8


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


def issues_figures(*, issue_ids: list[int]) -> dict[int, dict[str, int]]:
    """Return each issue's recipients, sent, bounced and failed, counted from the ledger."""
    from issues.models import Delivery  # issues depends on subscriptions, not the reverse

    counts: dict[int, dict[str, int]] = {issue_id: {} for issue_id in issue_ids}
    rows = Delivery.objects.filter(issue_id__in=counts).values("issue_id", "status").annotate(n=Count("id")).order_by()
    for row in rows:
        counts[row["issue_id"]][row["status"]] = row["n"]
    accepted = (Delivery.Status.SENT, Delivery.Status.DELIVERED, Delivery.Status.BOUNCED, Delivery.Status.COMPLAINED)
    return {
        issue_id: {
            "recipients": sum(by_status.values()),
            "sent": sum(by_status.get(s, 0) for s in accepted),
            "failed": by_status.get(Delivery.Status.FAILED, 0),
            "bounced": by_status.get(Delivery.Status.BOUNCED, 0),
        }
        for issue_id, by_status in counts.items()
    }


def issues_recent(*, limit: int = DASHBOARD_ISSUES) -> list[dict]:
    """Return the last issues with their status and delivery figures from the ledger."""
    from issues.models import Issue

    issues = list(Issue.objects.order_by("-created_at", "-id")[:limit])
    figures = issues_figures(issue_ids=[issue.pk for issue in issues])
    return [{"issue": issue, **figures[issue.pk]} for issue in issues]


def dashboard_context(*, now=None) -> dict:
    """Return the editor home's dashboard: charts, recent issues and the suppression count."""
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

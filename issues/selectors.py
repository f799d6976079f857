"""Reads for the editor's reports and the public archive."""

from __future__ import annotations

import datetime

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Max, Min, Q, QuerySet
from django.db.models.functions import TruncDay, TruncHour, TruncMinute
from django.utils import timezone

from dwvlist.redis import DASHBOARD_KEY
from issues.models import Delivery, Issue
from subscriptions.models import Subscription
from subscriptions.selectors import readers_dashboard

_SENT_STATUSES = [
    Delivery.Status.SENT,
    Delivery.Status.DELIVERED,
    Delivery.Status.BOUNCED,
    Delivery.Status.COMPLAINED,
]
_WAITING_STATUSES = [Delivery.Status.PENDING, Delivery.Status.CLAIMED, Delivery.Status.DEFERRED]
FAILURE_STATUSES = [Delivery.Status.FAILED, Delivery.Status.BOUNCED, Delivery.Status.COMPLAINED]


# The report ---------------------------------------------------------------


def issue_tracking_enabled(*, issue: Issue) -> bool:
    """Return whether any list of the issue records opens and clicks."""
    return issue.lists.filter(tracking_enabled=True).exists()


def issue_report(*, issue: Issue) -> dict:
    """Return the issue's figures, counted from the delivery ledger."""
    counts = issue.deliveries.aggregate(
        recipients=Count("id"),
        sent=Count("id", filter=Q(status__in=_SENT_STATUSES)),
        delivered=Count("id", filter=Q(status=Delivery.Status.DELIVERED)),
        bounced=Count("id", filter=Q(status=Delivery.Status.BOUNCED)),
        complained=Count("id", filter=Q(status=Delivery.Status.COMPLAINED)),
        failed=Count("id", filter=Q(status=Delivery.Status.FAILED)),
        skipped=Count("id", filter=Q(status=Delivery.Status.SKIPPED)),
        cancelled=Count("id", filter=Q(status=Delivery.Status.CANCELLED)),
        waiting=Count("id", filter=Q(status__in=_WAITING_STATUSES)),
        deferred=Count("id", filter=Q(status=Delivery.Status.DEFERRED)),
        opened=Count("id", filter=Q(opened_at__isnull=False)),
        clicked=Count("id", filter=Q(clicked_at__isnull=False)),
    )
    counts["unsubscribed"] = Subscription.objects.filter(unsubscribe_issue=issue).count()
    counts["tracking"] = issue_tracking_enabled(issue=issue)
    if not counts["tracking"]:
        # Not recorded for lists without tracking; never shown either.
        counts.pop("opened")
        counts.pop("clicked")
    return counts


def issue_failures(*, issue: Issue) -> QuerySet[Delivery]:
    """Return the deliveries that did not reach the reader, with their reasons."""
    return issue.deliveries.filter(status__in=FAILURE_STATUSES).order_by("email", "id")


def issue_failure_reasons(*, issue: Issue, limit: int = 20) -> list[dict]:
    """Return the most common failure reasons with how many deliveries each hit."""
    rows = (
        issue_failures(issue=issue)
        .values("status", "last_error")
        .annotate(count=Count("id"))
        .order_by("-count", "status", "last_error")
    )
    return list(rows[:limit])


def issue_sends_over_time(*, issue: Issue) -> tuple[str, list[tuple[str, int]]]:
    """Return the bucket unit and (label, count) of messages sent per bucket."""
    sent = issue.deliveries.filter(sent_at__isnull=False)
    span = sent.aggregate(first=Min("sent_at"), last=Max("sent_at"))
    if span["first"] is None:
        return "minute", []
    length = span["last"] - span["first"]
    if length <= datetime.timedelta(hours=3):
        unit, trunc, fmt = "minute", TruncMinute, "%H:%M"
    elif length <= datetime.timedelta(days=3):
        unit, trunc, fmt = "hour", TruncHour, "%d %b %H:00"
    else:
        unit, trunc, fmt = "day", TruncDay, "%d %b"
    zone = timezone.get_current_timezone()
    rows = (
        sent.annotate(bucket=trunc("sent_at", tzinfo=zone))
        .values("bucket")
        .annotate(count=Count("id"))
        .order_by("bucket")
    )
    return unit, [(timezone.localtime(row["bucket"], zone).strftime(fmt), row["count"]) for row in rows]


# The archive --------------------------------------------------------------


DASHBOARD_ISSUES = 8


def issues_figures(*, issue_ids: list[int]) -> dict[int, dict[str, int]]:
    """Return each issue's recipients, sent, bounced and failed, counted from the ledger."""
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
    issues = list(Issue.objects.order_by("-created_at", "-id")[:limit])
    figures = issues_figures(issue_ids=[issue.pk for issue in issues])
    return [{"issue": issue, **figures[issue.pk]} for issue in issues]


def dashboard_refresh(*, now=None) -> dict:
    """Count the editor home's dashboard afresh and keep it for every visitor; return it.

    At a million readers the counting takes most of a second, so beat does
    it every DASHBOARD_REFRESH_SECONDS and visits read the result.
    """
    figures = {
        **readers_dashboard(now=now),
        "dashboard_issues": issues_recent(),
        "dashboard_counted_at": timezone.now(),
    }
    try:
        cache.set(DASHBOARD_KEY, figures, timeout=settings.DASHBOARD_REFRESH_SECONDS * 10)
    except Exception:  # noqa: S110 (without the cache, each visit counts for itself)
        pass
    return figures


def dashboard_context() -> dict:
    """Return the editor home's dashboard as last counted (counting it now only if nobody has)."""
    try:
        figures = cache.get(DASHBOARD_KEY)
    except Exception:
        figures = None
    return figures or dashboard_refresh()

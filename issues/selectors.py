"""Reads for the editor's reports and the public archive."""

from __future__ import annotations

import datetime
import re

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, F, Max, Min, Q, QuerySet, Subquery
from django.db.models.functions import TruncDay, TruncHour, TruncMinute
from django.utils import timezone

from dwvlist.redis import DASHBOARD_KEY, report_key
from issues.models import Delivery, DeliveryEvent, Issue
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


def ledger_counts(*, issue_ids: list[int], sent_since=None) -> dict[int, dict[str, int]]:
    """Return each issue's ledger rows by status, and how many were reclaimed, from one pass over the ledger.

    The one count behind the progress page, the report, the dashboard and
    /metrics, so they always agree. Issues without rows get zeros. With
    `sent_since`, also "recent": the rows sent since then (the progress
    page's rate), in the same pass.
    """
    statuses = [choice for choice, _ in Delivery.Status.choices]
    extra = {"recent": Count("id", filter=Q(sent_at__gte=sent_since))} if sent_since is not None else {}
    zero = {**dict.fromkeys(statuses, 0), "reclaimed": 0, **dict.fromkeys(extra, 0)}
    counts = {issue_id: dict(zero) for issue_id in issue_ids}
    if not issue_ids:
        return counts
    rows = (
        Delivery.objects.filter(issue_id__in=issue_ids)
        .values("issue_id")
        .annotate(
            **{status: Count("id", filter=Q(status=status)) for status in statuses},
            reclaimed=Count("id", filter=Q(reclaimed_at__isnull=False)),
            **extra,
        )
        .order_by()
    )
    for row in rows:
        counts[row.pop("issue_id")] = row
    return counts


def ledger_summary(counts: dict[str, int]) -> dict[str, int]:
    """Return the figures everyone shows, from an issue's ledger counts (see ledger_counts)."""
    return {
        "total": sum(counts[status] for status, _ in Delivery.Status.choices),
        "sent": sum(counts[status] for status in _SENT_STATUSES),
        "delivered": counts[Delivery.Status.DELIVERED],
        "bounced": counts[Delivery.Status.BOUNCED],
        "complained": counts[Delivery.Status.COMPLAINED],
        "failed": counts[Delivery.Status.FAILED],
        "skipped": counts[Delivery.Status.SKIPPED] + counts[Delivery.Status.CANCELLED],
        "cancelled": counts[Delivery.Status.CANCELLED],
        "pending": sum(counts[status] for status in _WAITING_STATUSES),
        "deferred": counts[Delivery.Status.DEFERRED],
        "reclaimed": counts["reclaimed"],
    }


def issue_report(*, issue: Issue) -> dict:
    """Return the issue's figures, counted from the delivery ledger."""
    summary = ledger_summary(ledger_counts(issue_ids=[issue.pk])[issue.pk])
    counts = {
        "recipients": summary["total"],
        "sent": summary["sent"],
        "delivered": summary["delivered"],
        "bounced": summary["bounced"],
        "complained": summary["complained"],
        "failed": summary["failed"],
        "skipped": summary["skipped"] - summary["cancelled"],
        "cancelled": summary["cancelled"],
        "waiting": summary["pending"],
        "deferred": summary["deferred"],
    }
    counts["unsubscribed"] = Subscription.objects.filter(unsubscribe_issue=issue).count()
    counts["tracking"] = issue_tracking_enabled(issue=issue)
    if counts["tracking"]:
        # Not recorded for lists without tracking; never shown either.
        counts.update(
            issue.deliveries.aggregate(
                opened=Count("id", filter=Q(opened_at__isnull=False)),
                clicked=Count("id", filter=Q(clicked_at__isnull=False)),
            )
        )
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


FEEDBACK_TYPES = {
    "bounced": "Bounced",
    "soft_bounced": "Soft bounce",
    "deferred": "Delayed",
    "complained": "Complaint",
}
_STATUS_CODE = re.compile(r"\b[245]\.\d{1,3}\.\d{1,3}\b")


def event_status_code(event: DeliveryEvent) -> str:
    """Return the enhanced status code an event carries (5.1.1 ...), from the SMTP path's report or the text."""
    payload = event.payload if isinstance(event.payload, dict) else {}
    if payload.get("status"):
        return str(payload["status"])
    match = _STATUS_CODE.search(f"{event.reject_reason} {event.description}")
    return match.group(0) if match else ""


def event_source(event: DeliveryEvent) -> str:
    """Return where an event came from: the provider, and for our SMTP path how the report arrived."""
    payload = event.payload if isinstance(event.payload, dict) else {}
    if event.provider == "smtp" and payload.get("source"):
        return f"smtp ({payload['source']})"
    return event.provider


def issue_feedback(*, issue: Issue, limit: int = 50) -> dict:
    """Return the issue's bounces and complaints, whatever path reported them: counts and the latest rows."""
    events = DeliveryEvent.objects.filter(delivery__issue_id=issue.pk, event_type__in=list(FEEDBACK_TYPES))
    if issue.ledger_id_min is not None and issue.ledger_id_max is not None:
        # Its deliveries' ids lie in this range: the feedback index is read
        # for that range alone, not for every issue's events.
        events = events.filter(delivery_id__gte=issue.ledger_id_min, delivery_id__lte=issue.ledger_id_max)
    # Ids from the index alone, then those rows: ordered by "id + 0", not
    # by the primary key walked from the newest event, which for an old
    # issue passes millions of other issues' events first.
    newest = events.alias(newest=F("id") + 0).order_by("-newest").values("id")[:limit]
    counts = {
        (row["provider"], row["event_type"]): row["count"]
        for row in events.values("provider", "event_type").annotate(count=Count("id"))
    }
    rows = [
        {
            "address": event.recipient,
            "kind": FEEDBACK_TYPES[event.event_type],
            "source": event_source(event),
            "status_code": event_status_code(event),
            "diagnostic": event.description,
            "when": event.occurred_at or event.received_at,
        }
        for event in DeliveryEvent.objects.filter(id__in=Subquery(newest)).order_by("-id")
    ]
    summary = [
        {"provider": provider, "kind": FEEDBACK_TYPES[kind], "count": count}
        for (provider, kind), count in sorted(counts.items())
    ]
    return {"summary": summary, "rows": rows}


# Counting a finished issue's million-row ledger takes seconds: its report
# figures are counted once and shared by every viewer for this long.
REPORT_REUSE_SECONDS = 300


def issue_report_page(*, issue: Issue) -> dict:
    """Return the report page's figures: the report, the sends over time and what came back, with when counted.

    A finished issue's are shared by every viewer for REPORT_REUSE_SECONDS
    (the page says when they were counted); a sending or paused issue's are
    counted afresh each time.
    """
    live = issue.status in (Issue.Status.SENDING, Issue.Status.PAUSED)
    # A retry or a status change makes a new key: figures counted before it are not shown after.
    key = report_key(issue.pk, issue.updated_at.isoformat() if issue.updated_at else "")
    if not live:
        try:
            cached = cache.get(key)
        except Exception:
            cached = None
        if cached:
            return cached
    unit, points = issue_sends_over_time(issue=issue)
    figures = {
        "report": issue_report(issue=issue),
        "feedback": issue_feedback(issue=issue),
        "chart_unit": unit,
        "chart_points": points,
        "counted_at": timezone.now(),
    }
    if not live:
        try:
            cache.set(key, figures, REPORT_REUSE_SECONDS)
        except Exception:  # noqa: S110 (without the cache, each view counts for itself)
            pass
    return figures


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
    """Return each issue's recipients, sent, bounced and failed, from the one ledger count (ledger_counts)."""
    counts = ledger_counts(issue_ids=issue_ids)
    figures = {}
    for issue_id in issue_ids:
        summary = ledger_summary(counts[issue_id])
        figures[issue_id] = {
            "recipients": summary["total"],
            "sent": summary["sent"],
            "failed": summary["failed"],
            "bounced": summary["bounced"],
        }
    return figures


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

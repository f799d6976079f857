"""The ledger, the issues and the provider events, for /metrics (read at scrape time)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from django.db.models import Count, Min, Q
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric

# Finished issues stay in the figures this long after they finish.
FINISHED_ISSUES_WINDOW = timedelta(hours=24)


class IssuesCollector:
    """Issues by status; each live or recent issue's ledger by status and its send rate; webhook backlog."""

    def collect(self) -> Iterator[Metric]:
        from issues import selectors, services
        from issues.models import Delivery, DeliveryEvent, Issue

        by_status = dict(Issue.objects.values_list("status").annotate(n=Count("id")).order_by())
        issues = GaugeMetricFamily("dwvlist_issues", "Issues by status.", labels=("status",))
        for status, _ in Issue.Status.choices:
            issues.add_metric([status], by_status.get(status, 0))
        yield issues

        live_statuses = (Issue.Status.SENDING, Issue.Status.PAUSED)
        since = timezone.now() - FINISHED_ISSUES_WINDOW
        shown = list(
            Issue.objects.filter(
                Q(status__in=live_statuses)
                | Q(status=Issue.Status.SENT, sent_at__gte=since)
                | Q(status=Issue.Status.CANCELLED, started_at__isnull=False, updated_at__gte=since)
            ).order_by("id")
        )
        live = [issue for issue in shown if issue.status in live_statuses]
        # Live issues share the progress page's recent count; finished ones are counted in one pass.
        counts = selectors.ledger_counts(issue_ids=[issue.pk for issue in shown if issue.status not in live_statuses])
        counts.update({issue.pk: services.issue_progress_counts(issue=issue) for issue in live})
        deliveries = GaugeMetricFamily(
            "dwvlist_deliveries",
            "Ledger rows of each issue that is sending, paused or finished within a day, by status.",
            labels=("issue_id", "status"),
        )
        reclaimed = GaugeMetricFamily(
            "dwvlist_deliveries_reclaimed",
            "Ledger rows taken back from a worker that died (possibly sent twice).",
            labels=("issue_id",),
        )
        for issue in shown:
            for status, _ in Delivery.Status.choices:
                deliveries.add_metric([str(issue.pk), status], counts[issue.pk].get(status, 0))
            reclaimed.add_metric([str(issue.pk)], counts[issue.pk].get("reclaimed", 0))
        yield deliveries
        yield reclaimed

        rate = GaugeMetricFamily(
            "dwvlist_issue_send_rate",
            "Messages per second of each live issue, as its progress page shows.",
            labels=("issue_id",),
        )
        eta = GaugeMetricFamily(
            "dwvlist_issue_eta_seconds",
            "Seconds left for each sending issue, as its progress page shows.",
            labels=("issue_id",),
        )
        for issue in live:
            progress = services.issue_progress(issue=issue)
            if progress["rate_per_second"] is not None:  # None: no figure yet (nothing sent in the window)
                rate.add_metric([str(issue.pk)], progress["rate_per_second"])
            if progress["eta_seconds"] is not None:
                eta.add_metric([str(issue.pk)], progress["eta_seconds"])
        yield rate
        yield eta

        backlog = DeliveryEvent.objects.filter(applied_at__isnull=True).aggregate(
            n=Count("id"), oldest=Min("received_at")
        )
        yield GaugeMetricFamily(
            "dwvlist_webhook_events_unapplied",
            "Provider events stored whose effects are not applied yet.",
            value=backlog["n"],
        )
        oldest = (timezone.now() - backlog["oldest"]).total_seconds() if backlog["oldest"] else 0.0
        yield GaugeMetricFamily(
            "dwvlist_webhook_events_unapplied_age_seconds",
            "Age of the oldest provider event not applied yet.",
            value=round(oldest, 3),
        )

"""Readers, suppressions and imports, for /metrics (read at scrape time)."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily, Metric


class SubscriptionsCollector:
    """Subscriptions per list and status, suppressions by reason, imports by status."""

    def collect(self) -> Iterator[Metric]:
        from subscriptions.models import ImportJob, MailingList, Subscription, Suppression

        slugs = dict(MailingList.objects.values_list("id", "slug"))
        subscriptions = GaugeMetricFamily(
            "dwvlist_subscriptions", "Subscriptions by list and status.", labels=("list", "status")
        )
        rows = Subscription.objects.values_list("mailing_list_id", "status").annotate(n=Count("id")).order_by()
        found = {(list_id, status): n for list_id, status, n in rows}
        for list_id, slug in sorted(slugs.items(), key=lambda item: item[1]):
            for status, _ in Subscription.Status.choices:
                subscriptions.add_metric([slug, status], found.get((list_id, status), 0))
        yield subscriptions

        by_reason = dict(Suppression.objects.values_list("reason").annotate(n=Count("id")).order_by())
        suppressions = GaugeMetricFamily("dwvlist_suppressions", "Suppressed addresses by reason.", labels=("reason",))
        for reason, _ in Suppression.Reason.choices:
            suppressions.add_metric([reason], by_reason.get(reason, 0))
        yield suppressions

        by_status = dict(ImportJob.objects.values_list("status").annotate(n=Count("id")).order_by())
        imports = GaugeMetricFamily("dwvlist_imports", "CSV imports by status.", labels=("status",))
        for status, _ in ImportJob.Status.choices:
            imports.add_metric([status], by_status.get(status, 0))
        yield imports

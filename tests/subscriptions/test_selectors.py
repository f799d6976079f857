from datetime import timedelta

import pytest
from django.utils import timezone

from issues.models import Delivery, Issue
from issues.selectors import dashboard_context, issues_recent
from subscriptions.models import MailingList, Subscriber, Subscription, Suppression
from subscriptions.selectors import list_growth, signups_and_unsubscribes

pytestmark = pytest.mark.django_db


@pytest.fixture
def news():
    return MailingList.objects.create(name="News", slug="news", from_name="N", from_email="n@example.org")


def reader(email, mailing_list, *, confirmed, unsubscribed=None):
    subscriber = Subscriber.objects.create(email=email)
    extra = (
        {"unsubscribed_at": unsubscribed, "unsubscribe_source": "link", "status": "unsubscribed"}
        if unsubscribed
        else {"status": "active"}
    )
    return Subscription.objects.create(
        subscriber=subscriber,
        mailing_list=mailing_list,
        consent_source="form",
        confirmed_at=confirmed,
        created_at=confirmed,
        **extra,
    )


def test_list_growth_walks_back_from_todays_count(news):
    now = timezone.now()
    reader("a@example.org", news, confirmed=now - timedelta(weeks=3))
    reader("b@example.org", news, confirmed=now)
    reader("c@example.org", news, confirmed=now - timedelta(weeks=5), unsubscribed=now - timedelta(weeks=1))
    values = [value for _, value in list_growth(now=now)["News"]]
    assert len(values) == 12
    assert values[-1] == 2  # a and b today
    # Each point is the count at the end of its week.
    assert values[-2] == 1  # a; c left during that week
    assert values[-3] == 2  # a and c
    assert values[-6] == 1  # c joined that week
    assert values[-7] == 0


def test_signups_and_unsubscribes_per_week(news):
    now = timezone.now()
    reader("a@example.org", news, confirmed=now)
    reader("c@example.org", news, confirmed=now - timedelta(weeks=2), unsubscribed=now)
    weeks = signups_and_unsubscribes(now=now)
    assert (weeks[-1]["signups"], weeks[-1]["unsubscribes"]) == (1, 1)
    assert weeks[-3]["signups"] == 1


def test_dashboard_shows_charts_recent_issues_and_suppressions(client, news):
    issue = Issue.objects.create(title="Strike <news>", body="x", status="sent", sent_at=timezone.now())
    now = timezone.now()
    for i, status in enumerate(["sent", "delivered", "failed"]):
        Delivery.objects.create(
            issue=issue, email=f"r{i}@example.org", status=status, sent_at=now if status != "failed" else None
        )
    Suppression.objects.create(email_hash="h", reason="hard_bounce")
    context = dashboard_context()
    assert 'role="img"' in context["dashboard_growth_chart"]
    assert "Signups and unsubscribes per week" in context["dashboard_weekly_chart"]
    row = issues_recent()[0]
    assert (row["recipients"], row["sent"], row["failed"]) == (3, 2, 1)
    assert context["dashboard_suppressed"] == 1

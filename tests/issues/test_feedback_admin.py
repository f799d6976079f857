"""The feedback admin at ten million events: indexes for what it filters and searches on, no full counts."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.models.functions import Lower
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from issues.models import Delivery, DeliveryEvent, Issue
from issues.selectors import issue_feedback

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/issues/deliveryevent/"


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("root", "root@example.org", "pw-123456789"))
    return client


@pytest.fixture
def events():
    DeliveryEvent.objects.bulk_create(
        [
            DeliveryEvent(
                provider=("sendgrid", "mailgun")[n % 2],
                event_id=f"ev-{n}|reader{n}@example.org",
                event_type=("delivered", "bounced", "opened")[n % 3],
                recipient=f"Reader{n}@Example.org",
                message_id=f"<m{n}@esp.example>",
            )
            for n in range(60)
        ]
    )


@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ("", "Reader59@Example.org"),
        ("?event_type=bounced", "Reader58@Example.org"),
        ("?provider=mailgun", "Reader59@Example.org"),
        ("?q=reader7@example.org", "Reader7@Example.org"),
        ("?q=%3Cm8%40esp.example%3E", "Reader8@Example.org"),
        ("?q=ev-9", "Reader9@Example.org"),
    ],
)
def test_the_feedback_admin_filters_and_searches_without_counting_or_listing_the_table(
    admin_client, events, query, shown
):
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(CHANGELIST + query)

    assert response.status_code == 200
    assert shown in response.content.decode()
    sql = [q["sql"].upper() for q in queries if "ISSUES_DELIVERYEVENT" in q["sql"].upper()]
    assert not [s for s in sql if "DISTINCT" in s]  # filters list fixed choices, never the table's values
    # One count at most (the page's, counted exactly only when the planner
    # estimates it small), never a second one of the whole table.
    assert sum(s.startswith("SELECT COUNT(*)") for s in sql) <= 1
    if connection.vendor == "postgresql":
        assert [s for s in sql if s.startswith("EXPLAIN")]


def test_the_feedback_admin_filtered_by_date_lists_the_newest_by_date(admin_client, events):
    DeliveryEvent.objects.filter(recipient="Reader3@Example.org").update(received_at=timezone.now())
    DeliveryEvent.objects.exclude(recipient="Reader3@Example.org").update(
        received_at=timezone.now() - datetime.timedelta(days=40)
    )
    since = timezone.now() - datetime.timedelta(days=1)

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(CHANGELIST, {"received_at__gte": str(since)})  # as the date filter's links

    assert response.status_code == 200
    page = response.content.decode()
    assert "Reader3@Example.org" in page
    assert "Reader59@Example.org" not in page
    listed = [q["sql"] for q in queries if q["sql"].startswith('SELECT "issues_deliveryevent"."id"')]
    assert listed
    assert 'ORDER BY "issues_deliveryevent"."received_at" DESC, "issues_deliveryevent"."id" DESC' in listed[-1]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL plans")
@pytest.mark.parametrize(
    ("queryset", "index"),
    [
        (
            lambda: DeliveryEvent.objects.filter(event_type="complained").order_by("-id")[:50],
            "deliveryevent_type_newest",
        ),
        (
            lambda: DeliveryEvent.objects.alias(a=Lower("recipient")).filter(a="reader7@example.org"),
            "deliveryevent_recipient_lower",
        ),
        (lambda: DeliveryEvent.objects.filter(event_id__startswith="ev-9"), "deliveryevent_event_id_prefix"),
        (lambda: DeliveryEvent.objects.filter(message_id="<m8@esp.example>"), "deliveryevent_message_id"),
        (
            lambda: DeliveryEvent.objects.filter(
                received_at__gte=timezone.now() - datetime.timedelta(days=91),
                received_at__lt=timezone.now() - datetime.timedelta(days=90),
            ).order_by("-received_at", "-id")[:50],
            "deliveryevent_received",
        ),
    ],
)
def test_each_admin_filter_and_search_has_an_index(queryset, index):
    DeliveryEvent.objects.bulk_create(
        [
            DeliveryEvent(
                # Rare kinds and providers are where an index matters: the
                # newest fifty are not among the newest rows.
                provider="postmark" if n % 1000 == 1 else ("sendgrid", "mailgun")[n % 2],
                event_id=f"ev-{n}|reader{n}@example.org",
                event_type="complained" if n % 1000 == 0 else ("delivered", "bounced", "opened")[n % 3],
                recipient=f"Reader{n}@Example.org",
                message_id=f"<m{n}@esp.example>",
            )
            for n in range(20_000)
        ]
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE issues_deliveryevent")
    plan = queryset().explain()

    assert index in plan, plan


def _issue_with_events(title: str, events: int) -> Issue:
    issue = Issue.objects.create(title=title, body="x", status=Issue.Status.SENT, sent_at=timezone.now())
    Delivery.objects.bulk_create(
        [
            Delivery(issue=issue, email=f"reader{n}@example.org", status="delivered", sent_at=issue.sent_at)
            for n in range(2_000)
        ]
    )
    ids = list(Delivery.objects.filter(issue=issue).order_by("id").values_list("id", flat=True))
    Issue.objects.filter(pk=issue.pk).update(ledger_id_min=ids[0], ledger_id_max=ids[-1])
    DeliveryEvent.objects.bulk_create(
        [
            DeliveryEvent(
                provider="sendgrid",
                event_id=f"{title}-{n}",
                # A bounce in fifty: the report's rows are a few percent of the table.
                event_type="bounced" if n % 50 == 0 else ("delivered", "opened")[n % 2],
                delivery_id=ids[n % len(ids)],
                recipient=f"reader{n % len(ids)}@example.org",
            )
            for n in range(events)
        ]
    )
    issue.refresh_from_db()
    return issue


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL plans")
def test_an_old_issues_report_reads_its_feedback_from_the_feedback_index():
    old = _issue_with_events("old", 20_000)
    _issue_with_events("new", 20_000)  # every newer event an old issue's newest rows must not be looked for among
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE issues_deliveryevent")

    with CaptureQueriesContext(connection) as queries:
        feedback = issue_feedback(issue=old)

    assert feedback["summary"] == [{"provider": "sendgrid", "kind": "Bounced", "count": 400}]
    assert [row["address"] for row in feedback["rows"][:2]] == ["reader1950@example.org", "reader1900@example.org"]
    sql = [q["sql"] for q in queries if "issues_deliveryevent" in q["sql"]]
    assert len(sql) == 2
    with connection.cursor() as cursor:
        for query in sql:
            cursor.execute(f"EXPLAIN {query}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
            # The counts come from the index alone; the newest rows are found
            # through it too, not by walking the primary key from the newest event.
            assert "deliveryevent_feedback" in plan, plan

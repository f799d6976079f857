"""The feedback admin at ten million events: indexes for what it filters and searches on, no full counts."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.models.functions import Lower
from django.test.utils import CaptureQueriesContext

from issues.models import DeliveryEvent

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

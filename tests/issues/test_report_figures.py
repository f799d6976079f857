"""The report page of a finished issue: its figures counted once and shared, recounted after any change."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from issues.models import Delivery, Issue
from subscriptions.models import MailingList

pytestmark = pytest.mark.django_db


@pytest.fixture
def editor_client(client):
    user = User.objects.create_user("eddie", "eddie@staff.example.org", "a-long-test-password-42", is_staff=True)
    user.groups.add(Group.objects.get(name="Editors"))
    client.force_login(user)
    return client


@pytest.fixture
def sent_issue():
    news = MailingList.objects.create(name="News", slug="news", from_name="N", from_email="n@example.org")
    issue = Issue.objects.create(title="One", body="x", status=Issue.Status.SENT, sent_at=timezone.now())
    issue.lists.add(news)
    now = timezone.now()
    Delivery.objects.bulk_create(
        [Delivery(issue=issue, email=f"r{n}@example.org", status="sent", sent_at=now) for n in range(5)]
        + [Delivery(issue=issue, email="gone@example.org", status="failed", last_error="550 no such user")]
    )
    return issue


def _report(client, issue) -> tuple[str, int]:
    with CaptureQueriesContext(connection) as queries:
        page = client.get(f"/editor/issues/{issue.pk}/report/").content.decode()
    return page, len(queries)


def test_a_finished_issues_figures_are_counted_once_and_shared(editor_client, sent_issue):
    first, first_queries = _report(editor_client, sent_issue)
    second, second_queries = _report(editor_client, sent_issue)
    assert "Figures as of" in first and "Figures as of" in second
    assert "550 no such user" in second  # the failures themselves are always read afresh
    assert second_queries < first_queries


def test_a_change_to_the_issue_shows_figures_counted_after_it(editor_client, sent_issue):
    page, _ = _report(editor_client, sent_issue)
    assert '<th scope="row">Sent</th><td>5</td>' in page
    Delivery.objects.filter(issue=sent_issue, status="failed").update(status="sent", sent_at=timezone.now())
    Issue.objects.filter(pk=sent_issue.pk).update(updated_at=timezone.now())  # as every status change does
    page, _ = _report(editor_client, sent_issue)
    assert '<th scope="row">Sent</th><td>6</td>' in page

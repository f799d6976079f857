"""The Django admin cannot rewrite what was sent: sent and sending issues are read-only and never deleted."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, User
from django.utils import timezone

from issues.models import Delivery, Issue
from subscriptions.models import Subscriber
from subscriptions.roles import roles_ensure
from tests.issues.ledger_helpers import issue_make, list_make


def _login(client, role: str) -> User:
    roles_ensure(apps)
    user = User.objects.create_user(f"{role.lower()}-user", password="x-long-password-1", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    return user


@pytest.fixture
def sent_issue(db):
    news = list_make("news")
    issue = issue_make(news, title="What was mailed")
    now = timezone.now()
    Issue.objects.filter(pk=issue.pk).update(
        status="sent", started_at=now, sent_at=now, snapshot_subject="What was mailed", snapshot_html="<p>x</p>"
    )
    for n, status in enumerate(["sent", "delivered", "failed", "bounced"]):
        reader = Subscriber.objects.create(email=f"r{n}@example.org")
        Delivery.objects.create(
            issue=issue,
            subscriber=reader,
            mailing_list=news,
            email=reader.email,
            status=status,
            sent_at=now if status != "failed" else None,
        )
    issue.refresh_from_db()
    return issue


def _change_form(issue: Issue) -> dict:
    return {
        "title": "Rewritten",
        "body": "Rewritten",
        "status": "draft",
        "sent_at_0": "",
        "sent_at_1": "",
        "lists": [issue.lists.get().pk],
    }


@pytest.mark.parametrize("role", ["Editors", "Admins"])
def test_a_sent_issue_is_read_only_in_the_admin(client, sent_issue, role):
    _login(client, role)
    url = f"/admin/issues/issue/{sent_issue.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="title"' not in html and 'name="status"' not in html and 'name="body"' not in html
    assert 'name="_save"' not in html
    response = client.post(url, _change_form(sent_issue))
    assert response.status_code == 403
    sent_issue.refresh_from_db()
    assert (sent_issue.title, sent_issue.status, sent_issue.body) == ("What was mailed", "sent", sent_issue.body)


def test_a_superuser_cannot_change_a_sending_issue_either(client, sent_issue):
    Issue.objects.filter(pk=sent_issue.pk).update(status="sending")
    user = User.objects.create_superuser("root", password="x-long-password-1")
    client.force_login(user)
    assert client.post(f"/admin/issues/issue/{sent_issue.pk}/change/", _change_form(sent_issue)).status_code == 403
    assert client.post(f"/admin/issues/issue/{sent_issue.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Issue.objects.filter(pk=sent_issue.pk, status="sending").exists()


def test_a_draft_cannot_be_marked_sent_in_the_admin(client, db):
    _login(client, "Admins")
    news = list_make("news")
    draft = issue_make(news, title="A draft")
    page = client.get(f"/admin/issues/issue/{draft.pk}/change/").content.decode()
    assert 'name="title"' in page and 'name="status"' not in page and 'name="sent_at_0"' not in page
    form = {"title": "A draft, edited", "body": "Text", "lists": [news.pk], "status": "sent"}
    form |= {"sent_at_0": "2026-01-01", "sent_at_1": "10:00:00", "created_at_0": "2026-01-01", "created_at_1": "09:00"}
    response = client.post(f"/admin/issues/issue/{draft.pk}/change/", form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    draft.refresh_from_db()
    assert draft.title == "A draft, edited" and draft.status == "draft" and draft.sent_at is None


def test_an_issue_with_a_ledger_cannot_be_deleted_but_can_be_hidden_from_the_archive(client, sent_issue):
    admin_user = _login(client, "Admins")
    assert client.get(f"/admin/issues/issue/{sent_issue.pk}/delete/").status_code == 403
    listing = client.get("/admin/issues/issue/").content.decode()
    assert "delete_selected" not in listing and "hide_from_archive" in listing
    response = client.post(
        "/admin/issues/issue/", {"action": "hide_from_archive", "_selected_action": [sent_issue.pk]}, follow=True
    )
    assert "1 issue(s) hidden from the archive." in response.content.decode()
    sent_issue.refresh_from_db()
    assert sent_issue.archive_hidden_by == admin_user and sent_issue.archive_hidden_at is not None
    assert Delivery.objects.filter(issue=sent_issue).count() == 4


def test_editors_cannot_hide_issues(client, sent_issue):
    _login(client, "Editors")
    assert "hide_from_archive" not in client.get("/admin/issues/issue/").content.decode()


def test_a_hidden_issue_leaves_the_archive_and_its_feed(client, sent_issue):
    from issues.archive.selectors import archive_issues

    news = sent_issue.lists.get()
    news.is_public = news.archive_enabled = True
    news.save()
    assert list(archive_issues(mailing_list=news)) == [sent_issue]
    Issue.objects.filter(pk=sent_issue.pk).update(archive_hidden_at=timezone.now())
    assert list(archive_issues(mailing_list=news)) == []
    assert "What was mailed" not in client.get(f"/archive/{news.slug}/feed/").content.decode()


def test_editors_see_only_failed_deliveries_in_the_admin_as_the_report_shows(client, sent_issue):
    _login(client, "Editors")
    page = client.get("/admin/issues/delivery/").content.decode()
    assert "r2@example.org" in page and "r3@example.org" in page  # failed, bounced: on the report too
    assert "r0@example.org" not in page and "r1@example.org" not in page
    sent_row = Delivery.objects.get(email="r0@example.org")
    assert client.get(f"/admin/issues/delivery/{sent_row.pk}/change/").status_code == 302  # not found for them


def test_admins_see_the_whole_ledger(client, sent_issue):
    _login(client, "Admins")
    page = client.get("/admin/issues/delivery/").content.decode()
    assert all(f"r{n}@example.org" in page for n in range(4))

import csv
import io

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.utils import timezone

from subscriptions.models import MailingList, StaffJob, Subscriber, Subscription
from subscriptions.staff_jobs.run import staff_job_run_once

pytestmark = pytest.mark.django_db


@pytest.fixture
def lists():
    news = MailingList.objects.create(name="News", slug="news", from_name="N", from_email="n@example.org")
    events = MailingList.objects.create(name="Events", slug="events", from_name="E", from_email="e@example.org")
    now = timezone.now()
    ann = Subscriber.objects.create(email="ann@example.org", name="=HYPERLINK(1)")
    bob = Subscriber.objects.create(email="bob@example.org", name="Bob")
    Subscription.objects.create(
        subscriber=ann, mailing_list=news, status="active", consent_source="form", confirmed_at=now
    )
    Subscription.objects.create(subscriber=bob, mailing_list=news, status="pending", consent_source="import")
    Subscription.objects.create(
        subscriber=bob, mailing_list=events, status="active", consent_source="form", confirmed_at=now
    )
    return news, events


def staff_client(client, group):
    user = User.objects.create_user(group.lower(), "x@staff.example.org", "a-long-test-password-42", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    client.force_login(user)
    return client


def export(client, **filters) -> list[list[str]]:
    """Start an export as the page does, let the worker's code run it, and download the file."""
    response = client.post("/editor/subscribers/export/", filters)
    job = StaffJob.objects.latest("pk")
    assert response.status_code == 302 and response["Location"] == f"/editor/subscribers/jobs/{job.pk}/"
    staff_job_run_once(job_id=job.pk)
    download = client.get(f"/editor/subscribers/jobs/{job.pk}/download/")
    assert download.status_code == 200
    assert download["Content-Type"] == "text/csv; charset=utf-8"
    export.disposition = download["Content-Disposition"]
    body = b"".join(download.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


def test_admin_downloads_a_filtered_csv(client, lists):
    rows = export(staff_client(client, "Admins"), mailing_list=lists[0].pk, status="active")
    assert export.disposition.startswith('attachment; filename="subscribers-news-active-')
    assert rows[0][:4] == ["email", "name", "list", "status"]
    assert [r[:4] for r in rows[1:]] == [["ann@example.org", "'=HYPERLINK(1)", "news", "active"]]


def test_export_without_filters_has_one_row_per_subscription(client, lists):
    rows = export(staff_client(client, "Admins"))
    assert len(rows) == 4


def test_editors_cannot_export(client, lists):
    editor = staff_client(client, "Editors")
    assert editor.get("/editor/subscribers/export/").status_code == 403
    assert editor.post("/editor/subscribers/export/", {}).status_code == 403
    assert not StaffJob.objects.exists()


def test_export_command_writes_a_file(tmp_path, lists):
    out = tmp_path / "out.csv"
    call_command("export_subscribers", "--list", "events", "--output", str(out), stderr=io.StringIO())
    rows = list(csv.reader(out.open(encoding="utf-8")))
    assert [r[0] for r in rows[1:]] == ["bob@example.org"]

import csv
import io

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from issues.models import Delivery, Issue
from subscriptions.addresses import email_hash
from subscriptions.models import ImportJob, MailingList, StaffJob, StoredFile, Subscriber, Subscription, Suppression
from subscriptions.staff_jobs.run import staff_job_run_once

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-test-password-42"


@pytest.fixture
def news():
    return MailingList.objects.create(name="News", slug="news", from_name="N", from_email="n@example.org")


@pytest.fixture
def admin_client(client):
    user = User.objects.create_user("ada", "ada@staff.example.org", PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name="Admins"))
    client.force_login(user)
    return client


def subscribe(email, mailing_list, status="active", name=""):
    subscriber = Subscriber.objects.create(email=email, name=name)
    extra = {"confirmed_at": timezone.now()} if status == "active" else {}
    Subscription.objects.create(
        subscriber=subscriber, mailing_list=mailing_list, status=status, consent_source="form", **extra
    )
    return subscriber


CHANGELIST = "/admin/subscriptions/subscriber/"


def test_search_finds_by_the_start_of_an_address_or_name(admin_client, news):
    subscribe("ann@example.org", news, name="Ann Arbor")
    subscribe("bob@example.org", news, name="Bob")
    page = admin_client.get(CHANGELIST, {"q": "ANN@"}).content.decode()
    assert "ann@example.org" in page and "bob@example.org" not in page
    page = admin_client.get(CHANGELIST, {"q": "bo"}).content.decode()
    assert "bob@example.org" in page and "ann@example.org" not in page


def test_filters_by_list_and_status_describe_one_subscription(admin_client, news):
    events = MailingList.objects.create(name="Events", slug="events", from_name="E", from_email="e@example.org")
    both = subscribe("both@example.org", news)
    Subscription.objects.create(subscriber=both, mailing_list=events, status="pending", consent_source="form")
    subscribe("pending@example.org", news, status="pending")
    page = admin_client.get(CHANGELIST, {"list": news.pk, "status": "pending"}).content.decode()
    assert "pending@example.org" in page and "both@example.org" not in page


def _job_from(response) -> StaffJob:
    """Return the staff job an admin action started (it redirects to the job's page), after running it."""
    job = StaffJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/editor/subscribers/jobs/{job.pk}/"
    staff_job_run_once(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "done"
    return job


def test_unsubscribe_action_records_the_admin_as_source(admin_client, news):
    reader = subscribe("ann@example.org", news)
    response = admin_client.post(CHANGELIST, {"action": "unsubscribe_all", "_selected_action": [reader.pk]})
    assert _job_from(response).changed == 1
    subscription = Subscription.objects.get(subscriber=reader)
    assert (subscription.status, subscription.unsubscribe_source) == ("unsubscribed", "admin")


def test_erase_deletes_the_reader_and_keeps_only_a_hash(admin_client, news, tmp_path):
    reader = subscribe("ann@example.org", news)
    issue = Issue.objects.create(title="One", body="x")
    Delivery.objects.create(issue=issue, subscriber=reader, email=reader.email, status="sent", sent_at=timezone.now())
    response = admin_client.post(CHANGELIST, {"action": "erase", "_selected_action": [reader.pk]})
    assert _job_from(response).changed == 1
    assert not Subscriber.objects.exists()
    suppression = Suppression.objects.get()
    assert (suppression.email, suppression.reason) == ("", "erased")
    assert suppression.email_hash == email_hash("ann@example.org")
    assert Delivery.objects.get().email == ""
    # A later import skips the erased address.
    from subscriptions.imports.jobs import import_job_create, import_job_run

    path = tmp_path / "again.csv"
    path.write_text("email\nAnn@example.org\n")
    job = import_job_create(source=path, file_name="again.csv", mailing_list=news, consent="given")
    assert import_job_run(job_id=job.pk).suppressed_count == 1


def test_resend_confirmation_queues_mail_for_pending_readers(admin_client, news):
    pending = subscribe("p@example.org", news, status="pending")
    active = subscribe("a@example.org", news)
    response = admin_client.post(
        CHANGELIST, {"action": "resend_confirmation", "_selected_action": [pending.pk, active.pk]}
    )
    job = _job_from(response)
    assert job.changed == 1  # only the pending reader gets one
    page = admin_client.get(response["Location"]).content.decode()
    assert "1 readers sent a confirmation mail." in page


def test_admin_adds_and_removes_a_suppression_with_a_reason(admin_client):
    response = admin_client.post(
        "/admin/subscriptions/suppression/add/",
        {"email": "Spam@Example.org", "reason": "manual", "note": "asked by phone"},
    )
    assert response.status_code == 302
    suppression = Suppression.objects.get()
    assert suppression.email_hash == email_hash("spam@example.org")
    assert suppression.note == "asked by phone"
    page = admin_client.get("/admin/subscriptions/suppression/", {"q": "spam@example.org"}).content.decode()
    assert "Spam@example.org" in page
    response = admin_client.post(f"/admin/subscriptions/suppression/{suppression.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not Suppression.objects.exists()


def test_invalid_suppression_address_is_refused(admin_client):
    response = admin_client.post("/admin/subscriptions/suppression/add/", {"email": "nope", "reason": "manual"})
    assert response.status_code == 200 and not Suppression.objects.exists()


def test_deliveries_are_read_only(admin_client):
    issue = Issue.objects.create(title="One", body="x")
    delivery = Delivery.objects.create(issue=issue, email="a@example.org")
    assert admin_client.get("/admin/issues/delivery/").status_code == 200
    assert admin_client.get("/admin/issues/delivery/add/").status_code == 403
    page = admin_client.get(f"/admin/issues/delivery/{delivery.pk}/change/").content.decode()
    assert 'name="email"' not in page


def test_list_admin_shows_every_list_setting(admin_client, news):
    page = admin_client.get(f"/admin/subscriptions/mailinglist/{news.pk}/change/").content.decode()
    for field in [
        "from_name",
        "from_email",
        "reply_to",
        "footer_text",
        "is_public",
        "archive_enabled",
        "tracking_enabled",
    ]:
        assert f'name="{field}"' in page


def test_import_page_runs_an_import_and_reports_bad_rows(admin_client, news, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    upload = io.BytesIO(b"email,name\nann@example.org,Ann\nbroken,B\n")
    upload.name = "readers.csv"
    response = admin_client.post(
        "/editor/subscribers/import/",
        {"file": upload, "mailing_list": news.pk, "consent": "given", "name_column": "name"},
    )
    job = ImportJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/editor/subscribers/import/{job.pk}/"
    page = admin_client.get(response["Location"]).content.decode()
    assert "Import of “readers.csv”" in page
    assert 'http-equiv="refresh"' in page  # reloads itself until a worker has run it
    from subscriptions.imports.jobs import import_job_run

    import_job_run(job_id=job.pk)
    page = admin_client.get(response["Location"]).content.decode()
    assert 'http-equiv="refresh"' not in page
    assert "Bad rows" in page and "broken" in page
    progress = admin_client.get(f"/editor/subscribers/import/{job.pk}/progress.json").json()
    assert (progress["status"], progress["percent"], progress["imported"], progress["bad"]) == ("done", 100, 1, 1)
    bad = admin_client.get(f"/editor/subscribers/import/{job.pk}/bad-rows.csv")
    rows = list(csv.reader(io.StringIO(b"".join(bad.streaming_content).decode())))
    assert (rows[1][0], rows[1][2]) == ("broken", "3")


def test_import_form_explains_a_missing_column(admin_client, news, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    upload = io.BytesIO(b"who,what\nann@example.org,x\n")
    upload.name = "x.csv"
    response = admin_client.post(
        "/editor/subscribers/import/", {"file": upload, "mailing_list": news.pk, "consent": "given"}
    )
    assert response.status_code == 400
    assert "The file&#x27;s columns are: who, what" in response.content.decode()
    assert not ImportJob.objects.exists()
    assert not StoredFile.objects.exists()  # nothing of the refused upload is kept


def test_staff_login_is_locked_after_repeated_failures(client):
    User.objects.create_user("ada", "ada@staff.example.org", PASSWORD, is_staff=True)
    statuses = [client.post("/editor/login/", {"username": "ada", "password": "wrong"}).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 429]
    # Locked out: even the right password is refused for a while.
    response = client.post("/editor/login/", {"username": "ada", "password": PASSWORD})
    assert response.status_code == 429


def test_test_client_login_still_works(client):
    User.objects.create_user("ada", "ada@staff.example.org", PASSWORD, is_staff=True)
    assert client.login(username="ada", password=PASSWORD)


# --- The import form's rough edges ---------------------------------------------------


def test_import_form_preselects_a_lone_list_only(admin_client, news):
    page = admin_client.get("/editor/subscribers/import/").content.decode()
    assert f'<option value="{news.pk}" selected>News</option>' in page
    MailingList.objects.create(name="Notes", slug="notes", from_name="N", from_email="notes@example.org")
    page = admin_client.get("/editor/subscribers/import/").content.decode()
    assert "selected>News" not in page and "selected>Notes" not in page


def test_import_form_names_the_chosen_file_when_it_comes_back_with_an_error(admin_client, news, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    upload = io.BytesIO(b"email\nann@example.org\n")
    upload.name = "members-2026 ☭.csv"
    response = admin_client.post("/editor/subscribers/import/", {"file": upload, "mailing_list": news.pk})
    assert response.status_code == 400
    page = response.content.decode()
    assert "You chose “members-2026 ☭.csv”" in page and "choose it again" in page
    assert not ImportJob.objects.exists()


def _running_job(news, *, quiet_for: float) -> ImportJob:
    return ImportJob.objects.create(
        mailing_list=news,
        file_name="big.csv",
        file_path="/nonexistent.csv",
        consent="given",
        status="running",
        progressed_at=timezone.now() - timezone.timedelta(seconds=quiet_for),
    )


def test_continue_is_offered_only_for_a_stalled_import(admin_client, news, django_capture_on_commit_callbacks):
    lively = _running_job(news, quiet_for=5)
    page = admin_client.get(f"/editor/subscribers/import/{lively.pk}/").content.decode()
    assert "Continue the import" not in page
    with django_capture_on_commit_callbacks() as callbacks:
        answer = admin_client.post(f"/editor/subscribers/import/{lively.pk}/resume/", follow=True)
    assert "still making progress: nothing to continue" in answer.content.decode() and callbacks == []
    stalled = _running_job(news, quiet_for=120)
    page = admin_client.get(f"/editor/subscribers/import/{stalled.pk}/").content.decode()
    assert "Continue the import" in page and "No progress for over 60 seconds." in page
    with django_capture_on_commit_callbacks() as callbacks:
        answer = admin_client.post(f"/editor/subscribers/import/{stalled.pk}/resume/", follow=True)
    assert "queued to continue" in answer.content.decode() and len(callbacks) == 1


def test_bad_rows_csv_imports_as_it_is_once_fixed(admin_client, news, settings, tmp_path):
    from subscriptions.imports.jobs import import_job_create, import_job_run

    settings.VAR_DIR = tmp_path
    source = tmp_path / "first.csv"
    source.write_text("Name,E-mail\nAnn,ann@example.org\nBo,bo@@example.org\nCy,cy at example.org\n")
    job = import_job_create(source=source, file_name="first.csv", mailing_list=news, consent="given", copy=True)
    job = import_job_run(job_id=job.pk)
    assert job.bad_count == 2
    download = admin_client.get(f"/editor/subscribers/import/{job.pk}/bad-rows.csv")
    fixed = b"".join(download.streaming_content).decode()
    fixed = fixed.replace("bo@@example.org", "bo@example.org").replace("cy at example.org", "cy@example.org")
    again = tmp_path / "fixed.csv"
    again.write_text(fixed)
    second = import_job_create(source=again, file_name="fixed.csv", mailing_list=news, consent="given", copy=True)
    second = import_job_run(job_id=second.pk)
    assert (second.imported_count, second.bad_count) == (2, 0)
    assert set(Subscriber.objects.values_list("email", flat=True)) == {
        "ann@example.org",
        "bo@example.org",
        "cy@example.org",
    }

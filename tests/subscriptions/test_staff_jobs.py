"""Exports and bulk actions as staff jobs: written by a worker, offered only whole, restartable."""

from __future__ import annotations

import csv
import hashlib
import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from dwvlist.redis import redis_client
from issues.models import Delivery, DeliveryEvent, Issue
from subscriptions.files import file_local_copy, file_store, files_storage
from subscriptions.imports.jobs import import_job_create, import_job_run
from subscriptions.models import MailingList, StaffJob, StoredFile, Subscriber, Subscription
from subscriptions.staff_jobs.run import staff_job_run_once
from subscriptions.staff_jobs.services import staff_job_bulk_create, staff_jobs_stalled_fail

pytestmark = pytest.mark.django_db


@pytest.fixture
def news():
    return MailingList.objects.create(name="News", slug="news", from_name="N", from_email="n@example.org")


@pytest.fixture
def admin_client(client):
    user = User.objects.create_user("ada", "ada@staff.example.org", "a-long-test-password-42", is_staff=True)
    user.groups.add(Group.objects.get(name="Admins"))
    client.force_login(user)
    return client


def _readers(mailing_list, count: int, *, status="active", prefix="r") -> list[Subscriber]:
    readers = Subscriber.objects.bulk_create(
        [Subscriber(email=f"{prefix}{n}@example.org", name=f"Réader {n}") for n in range(count)]
    )
    Subscription.objects.bulk_create(
        [
            Subscription(
                subscriber=reader,
                mailing_list=mailing_list,
                status=status,
                consent_source="form",
                confirmed_at=timezone.now() if status == "active" else None,
            )
            for reader in readers
        ]
    )
    return readers


def _download(client, job) -> bytes:
    response = client.get(f"/editor/subscribers/jobs/{job.pk}/download/")
    assert response.status_code == 200
    return b"".join(response.streaming_content)


def test_an_export_is_written_by_a_worker_and_offered_whole_with_its_checksum(admin_client, news):
    _readers(news, 25)
    Subscriber.objects.filter(email="r3@example.org").update(name="=HYPERLINK(1)")
    response = admin_client.post("/editor/subscribers/export/", {"mailing_list": news.pk, "status": "active"})
    job = StaffJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/editor/subscribers/jobs/{job.pk}/"
    page = admin_client.get(response["Location"]).content.decode()
    assert "Queued" in page and 'http-equiv="refresh"' in page
    assert admin_client.get(f"/editor/subscribers/jobs/{job.pk}/download/").status_code == 404  # nothing yet

    staff_job_run_once(job_id=job.pk)

    job.refresh_from_db()
    page = admin_client.get(response["Location"]).content.decode()
    assert 'http-equiv="refresh"' not in page
    body = _download(admin_client, job)
    rows = list(csv.reader(io.StringIO(body.decode())))
    assert len(rows) == 26 and job.processed == 25
    assert hashlib.sha256(body).hexdigest() == job.sha256 and len(body) == job.file_size
    assert job.sha256 in page and "<dd>25</dd>" in page
    assert {row[0] for row in rows[1:]} == {f"r{n}@example.org" for n in range(25)}
    assert "'=HYPERLINK(1)" in body.decode()  # a formula in a name is defused
    progress = admin_client.get(f"/editor/subscribers/jobs/{job.pk}/progress.json").json()
    assert (progress["status"], progress["percent"], progress["processed"]) == ("done", 100, 25)


def test_the_download_carries_a_digest_of_what_was_written(admin_client, news):
    _readers(news, 3)
    admin_client.post("/editor/subscribers/export/", {})
    job = StaffJob.objects.get()
    staff_job_run_once(job_id=job.pk)
    response = admin_client.get(f"/editor/subscribers/jobs/{job.pk}/download/")
    job.refresh_from_db()
    assert response["Content-Length"] == str(job.file_size)
    assert response["Repr-Digest"].startswith("sha-256=:")
    assert 'attachment; filename="subscribers-all-' in response["Content-Disposition"]


def test_an_export_with_a_bad_filter_is_refused_and_starts_nothing(admin_client, news):
    response = admin_client.post("/editor/subscribers/export/", {"mailing_list": 999_999, "status": "nonsense"})
    assert response.status_code == 400
    assert not StaffJob.objects.exists()


def test_a_job_whose_worker_went_away_is_reported_failed_and_can_be_started_again(admin_client, news):
    _readers(news, 4)
    admin_client.post("/editor/subscribers/export/", {})
    job = StaffJob.objects.get()
    # A worker took it, then stopped giving signs of life.
    StaffJob.objects.filter(pk=job.pk).update(
        status="running", run_token="dead", processed=2, progressed_at=timezone.now() - timedelta(hours=1)
    )
    page = admin_client.get(f"/editor/subscribers/jobs/{job.pk}/").content.decode()
    assert "Failed" in page and "its worker went away" in page and "Start it again" in page
    assert admin_client.get(f"/editor/subscribers/jobs/{job.pk}/download/").status_code == 404

    response = admin_client.post(f"/editor/subscribers/jobs/{job.pk}/restart/")
    assert response.status_code == 302
    job.refresh_from_db()
    assert (job.status, job.processed) == ("queued", 0)
    staff_job_run_once(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "done" and job.processed == 4


def test_a_run_given_up_on_cannot_overwrite_the_run_that_replaced_it(news):
    _readers(news, 2)
    job = StaffJob.objects.create(kind="export")
    from subscriptions.staff_jobs.services import staff_job_finish, staff_job_take

    old = staff_job_take(job_id=job.pk)
    staff_jobs_stalled_fail(older_than=-1)
    StaffJob.objects.filter(pk=job.pk).update(status="queued")
    staff_job_run_once(job_id=job.pk)
    assert staff_job_finish(job=old, stored_name="exports/stale.csv", sha256="0" * 64) is False
    job.refresh_from_db()
    assert job.stored_name != "exports/stale.csv" and job.processed == 2


def test_bulk_erase_runs_in_batches_and_finds_events_by_address(admin_client, news):
    readers = _readers(news, 5)
    issue = Issue.objects.create(title="One", body="x")
    delivery = Delivery.objects.create(
        issue=issue, subscriber=readers[0], email=readers[0].email, status="sent", sent_at=timezone.now()
    )
    DeliveryEvent.objects.create(
        provider="mailgun", event_id="e1", event_type="delivered", delivery=delivery, recipient="r0@example.org"
    )
    # An event the provider could not link to a delivery, in other letter case.
    DeliveryEvent.objects.create(provider="mailgun", event_id="e2", event_type="bounced", recipient="R1@Example.ORG")
    job = staff_job_bulk_create(kind="erase", subscriber_ids=[r.pk for r in readers[:3]], user=None)
    staff_job_run_once(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.processed, job.changed) == ("done", 3, 3)
    assert set(Subscriber.objects.values_list("email", flat=True)) == {"r3@example.org", "r4@example.org"}
    assert set(DeliveryEvent.objects.values_list("recipient", flat=True)) == {""}


def test_bulk_resend_queues_a_task_per_thousand_readers_not_one_per_reader(news, django_capture_on_commit_callbacks):
    readers = _readers(news, 2500, status="pending")
    client = redis_client()
    client.delete("default")
    with django_capture_on_commit_callbacks(execute=True):
        job = staff_job_bulk_create(kind="resend", subscriber_ids=[r.pk for r in readers], user=None)
    client.delete("default")  # the job's own task
    with django_capture_on_commit_callbacks(execute=True):
        staff_job_run_once(job_id=job.pk)
    assert client.llen("default") == 3  # 1,000 + 1,000 + 500
    job.refresh_from_db()
    assert job.changed == 2500


def test_an_import_with_confirmations_queues_chunks_of_a_thousand(news, tmp_path, django_capture_on_commit_callbacks):
    path = tmp_path / "readers.csv"
    path.write_text("email\n" + "".join(f"n{n}@example.org\n" for n in range(10_000)))
    job = import_job_create(source=path, file_name="readers.csv", mailing_list=news, consent="confirm")
    client = redis_client()
    client.delete("default")
    with django_capture_on_commit_callbacks(execute=True):
        job = import_job_run(job_id=job.pk)
    assert job.confirmations_queued == 10_000
    assert client.llen("default") == 10  # tasks of a thousand readers, not ten thousand tasks


def test_stored_files_are_kept_in_the_database_in_chunks_and_read_back_whole(tmp_path, settings):
    data = bytes(range(256)) * 9000  # 2.3 MB: three chunks
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    name = file_store(source=source, prefix="tests", suffix=".bin")
    stored = StoredFile.objects.get(name=name)
    assert stored.size == len(data) and stored.chunks.count() == 3
    with file_local_copy(name) as path:
        assert path.read_bytes() == data
    with files_storage().open(name) as handle:
        assert handle.read(10) == data[:10]
    files_storage().delete(name)
    with pytest.raises(FileNotFoundError), file_local_copy(name):
        pass

import csv
import functools
import io
import time
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.utils import timezone

from subscriptions.addresses import email_hash
from subscriptions.imports.jobs import import_job_create, import_job_run, imports_stalled_claim
from subscriptions.models import ImportJob, MailingList, Subscriber, Subscription, Suppression
from tests.conftest import child_env, worker_with_beat

pytestmark = pytest.mark.django_db


@pytest.fixture
def news():
    return MailingList.objects.create(name="News", slug="news", from_name="News", from_email="news@example.org")


def write_csv(tmp_path, rows, name="readers.csv"):
    path = tmp_path / name
    with open(path, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def subscribe(email, mailing_list, status):
    subscriber = Subscriber.objects.create(email=email)
    now = timezone.now()
    extra = {"confirmed_at": now} if status == "active" else {}
    if status == "unsubscribed":
        extra = {"unsubscribed_at": now, "unsubscribe_source": "link"}
    Subscription.objects.create(
        subscriber=subscriber, mailing_list=mailing_list, status=status, consent_source="form", **extra
    )
    return subscriber


def run(path, mailing_list, **kwargs):
    kwargs.setdefault("consent", "given")
    job = import_job_create(source=path, file_name=path.name, mailing_list=mailing_list, **kwargs)
    return import_job_run(job_id=job.pk)


def test_consent_given_imports_active_subscriptions_recording_the_file(tmp_path, news):
    path = write_csv(tmp_path, [["Email", "Name"], ["Ann@Example.ORG", "Ann"], ["bob@example.org", ""]])
    job = run(path, news, name_column="name")
    assert job.status == "done"
    assert (job.imported_count, job.new_subscribers, job.bad_count) == (2, 2, 0)
    ann = Subscription.objects.get(subscriber__email="Ann@example.org")
    assert ann.subscriber.name == "Ann"
    assert ann.status == "active" and ann.confirmed_at is not None
    assert ann.consent_source == "import"
    assert ann.consent_detail == f"CSV import #{job.pk}: readers.csv"


def test_bad_rows_are_reported_with_row_number_and_reason(tmp_path, news):
    rows = [["email", "name"], ["ok@example.org", "Ok"], ["not an address", "X"], ["", ""], ["x@example.org", "a\nb"]]
    job = run(write_csv(tmp_path, rows), news, name_column="name")
    assert job.imported_count == 1
    assert job.bad_count == 3
    errors = {e.row_number: e for e in job.row_errors.all()}
    assert sorted(errors) == [3, 4, 5]
    assert errors[3].value == "not an address"
    assert "not a valid email address" in errors[3].reason
    assert errors[4].reason == "The row is empty."
    assert errors[5].reason == "The name cannot contain line breaks."


def test_suppressed_and_erased_addresses_are_skipped_and_counted(tmp_path, news):
    Suppression.objects.create(
        email_hash=email_hash("bounced@example.org"), email="bounced@example.org", reason="hard_bounce"
    )
    Suppression.objects.create(email_hash=email_hash("gone@example.org"), email="", reason="erased")
    rows = [["email"], ["Bounced@example.org"], ["gone@EXAMPLE.org"], ["fine@example.org"]]
    job = run(write_csv(tmp_path, rows), news)
    assert (job.suppressed_count, job.imported_count) == (2, 1)
    assert list(Subscriber.objects.values_list("email", flat=True)) == ["fine@example.org"]


def test_unsubscribed_readers_are_not_resubscribed_and_existing_ones_left_alone(tmp_path, news):
    left = subscribe("left@example.org", news, "unsubscribed")
    stays = subscribe("stays@example.org", news, "active")
    rows = [["email"], ["left@example.org"], ["STAYS@example.org"], ["new@example.org"]]
    job = run(write_csv(tmp_path, rows), news)
    assert (job.unsubscribed_count, job.existing_count, job.imported_count) == (1, 1, 1)
    assert Subscription.objects.get(subscriber=left).status == "unsubscribed"
    assert Subscription.objects.get(subscriber=stays).consent_source == "form"


def test_duplicates_within_the_file_are_counted_once(tmp_path, news):
    rows = [["email"], ["a@example.org"], ["A@example.org"], [" a@example.org "], ["b@example.org"]]
    job = run(write_csv(tmp_path, rows), news)
    assert (job.imported_count, job.duplicate_count) == (2, 2)


def test_lists_column_subscribes_to_the_named_lists_and_rejects_unknown_ones(tmp_path, news):
    MailingList.objects.create(name="Events", slug="events", from_name="E", from_email="e@example.org")
    rows = [["email", "lists"], ["a@example.org", "news; events"], ["b@example.org", ""], ["c@example.org", "nope"]]
    job = run(write_csv(tmp_path, rows), news, lists_column="lists")
    assert job.imported_count == 3
    assert sorted(
        Subscription.objects.filter(subscriber__email="a@example.org").values_list("mailing_list__slug", flat=True)
    ) == ["events", "news"]
    assert Subscription.objects.get(subscriber__email="b@example.org").mailing_list == news
    assert job.row_errors.get().reason == "No list has the slug nope."


def test_an_interrupted_import_resumes_without_duplicating(tmp_path, news):
    rows = [["email"]] + [[f"r{i}@example.org"] for i in range(50)] + [["r3@example.org"], ["bad"]]
    path = write_csv(tmp_path, rows)
    job = import_job_create(source=path, file_name="readers.csv", mailing_list=news, consent="given")
    # Stop after the first chunk, as a worker's time limit or a crash would.
    job = import_job_run(job_id=job.pk, max_seconds=0, chunk_rows=20)
    assert job.status == "running" and job.processed_rows == 20 and job.unfinished
    assert Subscription.objects.count() == 20
    job = import_job_run(job_id=job.pk, chunk_rows=20)
    assert job.status == "done"
    assert job.processed_rows == job.total_rows == 52
    assert (job.imported_count, job.duplicate_count, job.bad_count) == (50, 1, 1)
    assert Subscription.objects.count() == 50
    # Running a finished job again changes nothing.
    assert import_job_run(job_id=job.pk).imported_count == 50


def test_only_imports_without_progress_for_a_while_count_as_stalled(tmp_path, news):
    path = write_csv(tmp_path, [["email"], ["a@example.org"]])
    make = functools.partial(
        import_job_create, source=path, file_name="readers.csv", mailing_list=news, consent="given"
    )
    long_ago = timezone.now() - timedelta(minutes=10)
    queued_lost, running_dead, running_alive, done = make(), make(), make(), make()
    ImportJob.objects.filter(pk=queued_lost.pk).update(created_at=long_ago)
    ImportJob.objects.filter(pk=running_dead.pk).update(status="running", progressed_at=long_ago)
    ImportJob.objects.filter(pk=running_alive.pk).update(
        status="running", created_at=long_ago, progressed_at=timezone.now()
    )
    ImportJob.objects.filter(pk=done.pk).update(status="done", created_at=long_ago, progressed_at=long_ago)

    assert sorted(imports_stalled_claim(older_than=300)) == sorted([queued_lost.pk, running_dead.pk])
    assert imports_stalled_claim(older_than=300) == []  # marked: not queued again next round


def test_a_committed_chunk_is_a_sign_of_life(tmp_path, news):
    path = write_csv(tmp_path, [["email"]] + [[f"r{i}@example.org"] for i in range(30)])
    job = import_job_create(source=path, file_name="readers.csv", mailing_list=news, consent="given")
    ImportJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(minutes=10))
    import_job_run(job_id=job.pk, max_seconds=0, chunk_rows=20)
    assert imports_stalled_claim(older_than=300) == []


def test_a_file_without_the_email_column_is_refused(tmp_path, news):
    path = write_csv(tmp_path, [["who", "what"], ["a@example.org", "x"]])
    with pytest.raises(ValidationError, match="Its columns are: who, what"):
        import_job_create(source=path, file_name="x.csv", mailing_list=news, consent="given", email_column="mail")
    with pytest.raises(ValidationError, match="Name the column"):
        import_job_create(source=path, file_name="x.csv", mailing_list=news, consent="given")


def test_a_file_over_100_mb_is_refused(tmp_path, news):
    path = tmp_path / "big.csv"
    with open(path, "wb") as handle:
        handle.truncate(100 * 1024 * 1024 + 1)
    with pytest.raises(ValidationError, match="at most 100 MB"):
        import_job_create(source=path, file_name="big.csv", mailing_list=news, consent="given")


def test_undecodable_bytes_fail_their_row_only(tmp_path, news):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"email\r\nj\xf6rg@example.org\r\nok@example.org\r\n")
    job = run(path, news)
    assert (job.imported_count, job.bad_count) == (1, 1)
    assert job.row_errors.get().row_number == 2


def test_confirm_mode_leaves_subscriptions_pending(tmp_path, news):
    job = run(write_csv(tmp_path, [["email"], ["a@example.org"]]), news, consent="confirm")
    subscription = Subscription.objects.get()
    assert subscription.status == "pending" and subscription.confirmed_at is None
    assert job.confirmations_queued == 1


def test_management_command_imports_and_writes_the_bad_rows(tmp_path, news):
    path = write_csv(tmp_path, [["E-mail", "Full name"], ["a@example.org", "A"], ["@@", "B"]])
    errors = tmp_path / "errors.csv"
    out = io.StringIO()
    call_command(
        "import_subscribers",
        str(path),
        "--list",
        "news",
        "--consent",
        "given",
        "--name-column",
        "full name",
        "--errors",
        str(errors),
        stdout=out,
    )
    assert "Subscriptions created: 1" in out.getvalue()
    assert "Bad rows: 1" in out.getvalue()
    assert Subscriber.objects.get().name == "A"
    assert path.exists()  # the command reads the file in place and leaves it
    lines = list(csv.reader(errors.open(encoding="utf-8")))
    assert lines[0] == ["email", "reason", "row"]
    assert (lines[1][0], lines[1][2]) == ("'@@", "3")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_runs_the_import_and_mails_confirmations(tmp_path, news, outbox, celery_worker):
    from subscriptions.imports.tasks import import_job_process

    path = write_csv(tmp_path, [["email"], ["ann@example.org"], ["bad"]])
    job = import_job_create(source=path, file_name="readers.csv", mailing_list=news, consent="confirm")
    import_job_process.delay(job.pk)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status == "done" and list(outbox.glob("*.eml")):
            break
        time.sleep(0.3)
    assert (job.status, job.imported_count, job.bad_count, job.confirmations_queued) == ("done", 1, 1, 1)
    mails = list(outbox.glob("*.eml"))
    assert len(mails) == 1
    assert b"To: ann@example.org" in mails[0].read_bytes()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_an_import_whose_worker_died_is_continued_by_beat_without_duplicates(tmp_path, news):
    rows = [["email"]] + [[f"r{i}@example.org"] for i in range(50)] + [["r3@example.org"], ["bad"]]
    path = write_csv(tmp_path, rows)
    job = import_job_create(source=path, file_name="readers.csv", mailing_list=news, consent="given")
    # One chunk committed, then the worker died: nothing queued continues it.
    job = import_job_run(job_id=job.pk, max_seconds=0, chunk_rows=20)
    assert (job.status, job.processed_rows) == ("running", 20)

    worker = worker_with_beat(env=child_env(IMPORT_STALL_SECONDS="1"), name="imports")
    try:
        worker.wait_ready()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and job.status != "done":
            time.sleep(0.3)
            job.refresh_from_db()
    finally:
        worker.stop()
    assert job.status == "done" and job.processed_rows == job.total_rows == 52
    assert (job.imported_count, job.duplicate_count, job.bad_count) == (50, 1, 1)
    assert Subscription.objects.filter(mailing_list=news, status="active").count() == 50

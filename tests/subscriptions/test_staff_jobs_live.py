"""Exports through real processes: a Celery worker writes them, a gunicorn with a short timeout serves them."""

from __future__ import annotations

import csv
import hashlib
import io
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client

from subscriptions.models import MailingList, StaffJob
from tests.conftest import ROOT, WorkerProcess, child_env

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _readers_insert(mailing_list: MailingList, count: int) -> None:
    """Insert `count` active readers of the list with set-based SQL (seconds, not minutes)."""
    if connection.vendor == "postgresql":
        numbers, now = "SELECT g AS n FROM generate_series(1, %s) g", "now()"
    else:
        numbers, now = (
            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < %s) SELECT n FROM g",
            "datetime('now')",
        )
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO subscriptions_subscriber (email, name, created_at, updated_at) "
            f"SELECT 'reader' || n || '@example.org', 'Réader ' || n, {now}, {now} FROM ({numbers}) AS numbers",
            [count],
        )
        cursor.execute(
            "INSERT INTO subscriptions_subscription (subscriber_id, mailing_list_id, status, consent_source, "
            "consented_at, consent_detail, confirmed_at, unsubscribe_source, created_at, updated_at) "
            f"SELECT id, %s, 'active', 'import', {now}, 'bulk', {now}, '', {now}, {now} FROM subscriptions_subscriber",
            [mailing_list.pk],
        )


def _admin_cookie() -> str:
    user = User.objects.create_user("ada", "ada@staff.example.org", "a-long-test-password-42", is_staff=True)
    user.groups.add(Group.objects.get(name="Admins"))
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def _wait(predicate, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def news():
    return MailingList.objects.create(name="News", slug="news", from_name="N", from_email="n@example.org")


@pytest.fixture
def gunicorn_short_timeout():
    """A real gunicorn, as the README deploys it, whose workers are killed after 5 s of one request."""
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "dwvlist.wsgi",
            "-b",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--timeout",
            "5",
        ],
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"

    def up():
        try:
            return urllib.request.urlopen(f"{base}/", timeout=2).status == 200
        except OSError:
            return False

    try:
        _wait(up, timeout=60, what="gunicorn")
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def _get(url: str, cookie: str) -> tuple[int, bytes, dict]:
    request = urllib.request.Request(url, headers={"Cookie": cookie})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status, response.read(), dict(response.headers)


def test_a_large_export_is_written_by_a_worker_and_downloads_whole_from_gunicorn(news, gunicorn_short_timeout):
    _readers_insert(news, 150_000)
    cookie = _admin_cookie()
    worker = WorkerProcess()
    try:
        worker.wait_ready()
        client = Client()
        client.cookies.load(cookie)
        response = client.post("/editor/subscribers/export/", {"mailing_list": news.pk})
        job = StaffJob.objects.get()
        assert response.status_code == 302
        # Watched while it runs: the figures move, and nothing is offered until the file is whole.
        seen = _wait(
            lambda: StaffJob.objects.filter(pk=job.pk, processed__gt=0).values_list("processed", "status").first(),
            timeout=120,
            what="the export to make progress",
        )
        if seen[1] == "running":
            assert client.get(f"/editor/subscribers/jobs/{job.pk}/download/").status_code == 404
        _wait(lambda: StaffJob.objects.filter(pk=job.pk, status="done").exists(), timeout=300, what="the export")
    finally:
        worker.stop()
    job.refresh_from_db()
    status, page, _ = _get(f"{gunicorn_short_timeout}/editor/subscribers/jobs/{job.pk}/", cookie)
    assert status == 200 and job.sha256 in page.decode() and "<dd>150000</dd>" in page.decode()
    status, body, headers = _get(f"{gunicorn_short_timeout}/editor/subscribers/jobs/{job.pk}/download/", cookie)
    assert status == 200
    assert len(body) == job.file_size == int(headers["Content-Length"])
    assert hashlib.sha256(body).hexdigest() == job.sha256
    rows = list(csv.reader(io.StringIO(body.decode())))
    assert len(rows) - 1 == job.processed == 150_000
    assert rows[-1][0].startswith("reader") and rows[1][1].startswith("Réader")


def test_an_export_whose_worker_is_killed_is_reported_failed_and_finishes_when_started_again(news, settings):
    _readers_insert(news, 150_000)
    cookie = _admin_cookie()
    client = Client()
    client.cookies.load(cookie)
    worker = WorkerProcess()
    try:
        worker.wait_ready()
        client.post("/editor/subscribers/export/", {})
        job = StaffJob.objects.get()
        _wait(lambda: StaffJob.objects.filter(pk=job.pk, processed__gt=0).exists(), timeout=120, what="progress")
        worker.kill()
    finally:
        worker.stop()
    job.refresh_from_db()
    assert job.status == "running" and job.processed < 150_000  # killed mid-export
    settings.STAFF_JOB_STALL_SECONDS = 1
    time.sleep(2)
    page = client.get(f"/editor/subscribers/jobs/{job.pk}/").content.decode()
    assert "Failed" in page and "its worker went away" in page
    assert client.get(f"/editor/subscribers/jobs/{job.pk}/download/").status_code == 404

    assert client.post(f"/editor/subscribers/jobs/{job.pk}/restart/").status_code == 302
    worker = WorkerProcess()
    try:
        worker.wait_ready()
        _wait(lambda: StaffJob.objects.filter(pk=job.pk, status="done").exists(), timeout=300, what="the restart")
    finally:
        worker.stop()
    job.refresh_from_db()
    body = b"".join(client.get(f"/editor/subscribers/jobs/{job.pk}/download/").streaming_content)
    assert hashlib.sha256(body).hexdigest() == job.sha256
    assert body.count(b"\n") - 1 == job.processed == 150_000

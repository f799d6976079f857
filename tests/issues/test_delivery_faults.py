"""The delivery engine under real faults: real workers, real Redis, real sinks.

Each test drives a real `celery worker` process against the test database
and checks the ledger and what reached the sink.
"""

from __future__ import annotations

import signal
import time

import pytest
from django.db import transaction

from dwvlist.embedded_redis import EmbeddedRedis
from issues import services
from issues.delivery import ledger
from issues.delivery.tasks import reap_stale_deliveries
from issues.models import Delivery, Issue
from tests.conftest import WorkerProcess, _session_tmp, child_env, worker_with_beat
from tests.fakes.sinks import EspSink, SmtpSink
from tests.issues.ledger_helpers import issue_make, ledger_writer_dies_on_second_chunk, list_make, readers_make

pytestmark = [pytest.mark.worker, pytest.mark.slow]

FAST_RECOVERY = {
    "SEND_RETRY_BASE_SECONDS": "0",
    "SEND_ALIVE_TTL": "2",
    "SEND_CLAIM_TIMEOUT": "3",
    "SEND_LANES": "2",
    "SITE_URL": "https://list.example.org",
}


def _smtp_env(sink: SmtpSink, **extra: str) -> dict:
    return child_env(
        EMAIL_TRANSPORT="smtp", EMAIL_HOST="127.0.0.1", EMAIL_PORT=str(sink.port), **FAST_RECOVERY, **extra
    )


def _wait(predicate, *, timeout: float, step: float = 0.2, on_tick=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if on_tick:
            on_tick()
        time.sleep(step)
    raise AssertionError("timed out waiting")


def _status(issue: Issue) -> str:
    return Issue.objects.values_list("status", flat=True).get(pk=issue.pk)


@pytest.fixture
def fast_recovery(settings):
    for key, value in FAST_RECOVERY.items():
        setattr(settings, key, int(value) if value.isdigit() else value)
    return settings


def test_send_now_reaches_every_reader_once_through_a_real_worker_and_smtp(transactional_db, fast_recovery):
    sink = SmtpSink(keep_messages=True).start()
    worker = WorkerProcess(env=_smtp_env(sink, SEND_BATCH_SIZE="40"))
    try:
        worker.wait_ready()
        news, events = list_make("news"), list_make("events")
        readers_make(news, 150)
        readers_make(events, 150)  # the same readers: one copy each
        readers_make(events, 50, start=1000)
        issue = issue_make(news, events)
        assert ledger.issue_recipient_count(issue=issue) == 200
        assert services.issue_send(issue=issue)
        _wait(lambda: _status(issue) == "sent", timeout=120)
    finally:
        worker.stop()
        sink.stop()
    assert sink.tally.unique == 200 and sink.tally.duplicates == 0
    assert sink.tally.shared_unsubscribe == 0 and sink.tally.missing_unsubscribe == 0
    assert Delivery.objects.filter(issue=issue, status="sent").count() == 200
    message = sink.tally.parsed()[0]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Subject"] == issue.title


def test_worker_killed_mid_send_loses_nobody_and_duplicates_at_most_the_batch_in_flight(
    transactional_db, fast_recovery
):
    batch = 100
    sink = SmtpSink().start()
    env = _smtp_env(sink, SEND_BATCH_SIZE=str(batch))
    news = list_make("news")
    readers_make(news, 20_000)
    issue = issue_make(news)
    first = WorkerProcess(env=env, concurrency=1)
    second = None
    try:
        first.wait_ready()
        fast_recovery.SEND_LANES = 1
        assert services.issue_send(issue=issue)
        _wait(lambda: sink.tally.total >= 3000, timeout=120)
        first.kill(signal.SIGKILL)  # the worker and its pool, mid-batch, no goodbye
        at_kill = sink.tally.total
        assert at_kill < 20_000
        second = WorkerProcess(env=env, concurrency=2)
        second.wait_ready()
        _wait(lambda: _status(issue) == "sent", timeout=300, step=1.0, on_tick=reap_stale_deliveries)
    finally:
        first.stop()
        if second:
            second.stop()
        sink.stop()
    progress = services.issue_progress(issue=issue)
    assert sink.tally.unique == 20_000, "every reader received the issue"
    assert sink.tally.duplicates <= batch, "at most the batch in flight went twice"
    assert sink.tally.duplicates <= progress["reclaimed"], "every possible duplicate is counted"
    assert Delivery.objects.filter(issue=issue, status="sent").count() == 20_000
    print(f"killed at {at_kill}, reclaimed {progress['reclaimed']}, duplicates {sink.tally.duplicates}")


def test_provider_answering_503_and_timing_out_still_reaches_everyone(transactional_db, fast_recovery):
    esp = EspSink(fail_share=0.20, timeout_share=0.05, hang=3.0).start()
    env = child_env(
        EMAIL_TRANSPORT="mailgun",
        **esp.anymail_env("mailgun"),
        ANYMAIL_REQUESTS_TIMEOUT="1",
        SEND_BATCH_SIZE="50",
        SEND_MAX_ATTEMPTS="50",
        **FAST_RECOVERY,
    )
    worker = WorkerProcess(env=env)
    try:
        worker.wait_ready()
        news = list_make("news")
        readers_make(news, 2000)
        issue = issue_make(news)
        assert services.issue_send(issue=issue)
        _wait(lambda: _status(issue) == "sent", timeout=240, step=0.5, on_tick=reap_stale_deliveries)
    finally:
        worker.stop()
        esp.stop()
    assert esp.faults["503"] > 0 and esp.faults["timeout"] > 0
    assert esp.tally.unique == 2000
    assert esp.tally.shared_unsubscribe == 0 and esp.tally.missing_unsubscribe == 0
    # A timed-out call may have been accepted after all: those are the only possible repeats.
    assert esp.tally.duplicates <= esp.faults["timeout"] * 50
    assert Delivery.objects.filter(issue=issue, status="sent").count() == 2000
    assert Delivery.objects.filter(issue=issue).exclude(provider_message_id="").count() == 2000


def test_postmark_gets_one_call_per_reader_with_their_own_headers(transactional_db, fast_recovery):
    esp = EspSink().start()
    env = child_env(
        EMAIL_TRANSPORT="postmark",
        **esp.anymail_env("postmark"),
        **FAST_RECOVERY,
    )
    worker = WorkerProcess(env=env)
    try:
        worker.wait_ready()
        news = list_make("news")
        readers_make(news, 60)
        issue = issue_make(news)
        assert services.issue_send(issue=issue)
        _wait(lambda: _status(issue) == "sent", timeout=120)
    finally:
        worker.stop()
        esp.stop()
    assert esp.tally.unique == 60 and esp.tally.duplicates == 0 and esp.tally.calls == 60
    assert esp.tally.shared_unsubscribe == 0 and esp.tally.missing_unsubscribe == 0


def test_redis_restart_mid_send_loses_nothing(transactional_db, fast_recovery):
    redis_server = EmbeddedRedis(_session_tmp / "redis-restart")
    url = redis_server.start()
    sink = SmtpSink().start()
    # Beat runs inside this worker (-B) so the reaper re-queues lanes from
    # the ledger once the restarted Redis has forgotten every queued task.
    env = _smtp_env(sink, REDIS_URL=url, SEND_BATCH_SIZE="50", SEND_REAP_INTERVAL="1")
    worker = worker_with_beat(env=env, name="restart")
    try:
        worker.wait_ready()
        news = list_make("news")
        readers_make(news, 6000)
        issue = issue_make(news)
        # Start the issue without queueing from here: this process talks to another Redis.
        with transaction.atomic():
            Issue.objects.filter(pk=issue.pk).update(status="sending")
            issue.refresh_from_db()
            services.issue_freeze(issue=issue)
            ledger.ledger_write(issue=issue)
        _wait(lambda: sink.tally.total >= 1000, timeout=120)
        redis_server.stop()
        time.sleep(1)
        assert sink.tally.total < 6000
        redis_server.start()
        _wait(lambda: _status(issue) == "sent", timeout=240, step=0.5)
    finally:
        worker.stop()
        sink.stop()
        redis_server.stop()
    assert sink.tally.unique == 6000
    assert sink.tally.duplicates <= Delivery.objects.filter(issue=issue, reclaimed_at__isnull=False).count()


def test_a_ledger_cut_off_part_way_is_finished_by_the_reaper_and_everyone_is_reached(
    transactional_db, fast_recovery, monkeypatch
):
    sink = SmtpSink().start()
    env = _smtp_env(sink, SEND_BATCH_SIZE="50", SEND_REAP_INTERVAL="1")
    worker = worker_with_beat(env=env, name="ledger")
    try:
        worker.wait_ready()
        news = list_make("news")
        readers_make(news, 900)
        issue = issue_make(news)
        ledger_writer_dies_on_second_chunk(monkeypatch, chunk=300)
        with pytest.raises(OSError):
            services.issue_send(issue=issue)  # the first 300 rows are committed and their lanes queued
        assert Delivery.objects.filter(issue=issue).count() == 300
        _wait(lambda: _status(issue) == "sent", timeout=120)
    finally:
        worker.stop()
        sink.stop()
    issue.refresh_from_db()
    assert issue.ledger_written_at is not None
    assert sink.tally.unique == 900 and sink.tally.duplicates == 0
    assert Delivery.objects.filter(issue=issue, status="sent").count() == 900

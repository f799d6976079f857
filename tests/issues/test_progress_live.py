"""The progress figures sampled while a real worker sends, rate-limited, through real SMTP: true at every moment."""

from __future__ import annotations

import time

import pytest
from django.db.models import Count

from issues import services
from issues.models import Delivery, Issue
from tests.conftest import WorkerProcess, child_env
from tests.fakes.sinks import SmtpSink
from tests.issues.ledger_helpers import issue_make, list_make, readers_make

pytestmark = [pytest.mark.worker, pytest.mark.slow]

RATE = 20  # messages a second, across workers
READERS = 200


def _truth(issue: Issue) -> dict[str, int]:
    """Return the ledger's rows by status, counted directly."""
    rows = dict(Delivery.objects.filter(issue=issue).values_list("status").annotate(n=Count("id")))
    return {status: rows.get(status, 0) for status, _ in Delivery.Status.choices}


def _sample(issue: Issue) -> tuple[float, dict, dict, dict]:
    before = _truth(issue)
    progress = services.issue_progress(issue=issue)
    after = _truth(issue)
    return time.monotonic(), before, progress, after


def _check_truthful(before: dict, progress: dict, after: dict) -> None:
    """The figures lie between two direct counts of the ledger taken around them, and add up."""
    sent = ("sent", "delivered", "bounced", "complained")
    assert sum(before[s] for s in sent) <= progress["sent"] <= sum(after[s] for s in sent)
    assert before["cancelled"] <= progress["cancelled"] <= after["cancelled"]
    figures = ("sent", "failed", "skipped", "cancelled", "pending", "in_flight")
    assert sum(progress[f] for f in figures) == progress["total"]


def _worker(sink: SmtpSink, **extra: str) -> WorkerProcess:
    env = child_env(
        EMAIL_TRANSPORT="smtp",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(sink.port),
        SEND_RATE_LIMIT=str(RATE),
        SEND_BATCH_SIZE="20",
        SEND_LANES="2",
        SITE_URL="https://list.example.org",
        **extra,
    )
    worker = WorkerProcess(env=env)
    worker.wait_ready()
    return worker


def test_progress_sampled_during_a_rate_limited_send_matches_the_ledger(transactional_db, settings):
    settings.SEND_RATE_LIMIT = RATE
    sink = SmtpSink().start()
    worker = _worker(sink)
    samples = []
    try:
        news = list_make("news")
        readers_make(news, READERS)
        issue = issue_make(news)
        assert services.issue_send(issue=issue)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            samples.append(_sample(issue))
            if samples[-1][2]["status"] == "sent":
                break
            time.sleep(0.5)
        finished = time.monotonic()
    finally:
        worker.stop()
        sink.stop()
    assert samples[-1][2]["status"] == "sent" and sink.tally.unique == READERS
    started = samples[0][0]
    for _, before, progress, after in samples:
        _check_truthful(before, progress, after)
    # Blank before the first batch is recorded, a figure from then on.
    for _, _, progress, _ in samples:
        if progress["sent"] == 0:
            assert progress["rate_per_second"] is None and progress["eta_seconds"] is None
        else:
            assert progress["rate_per_second"] is not None
    # Once a few seconds are in the window, the rate is the limit's and the time left comes true.
    steady = [(t, p) for t, _, p, _ in samples if t - started >= 5 and p["status"] == "sending" and p["sent"]]
    assert len(steady) >= 5
    for t, progress in steady:
        assert 0.5 * RATE <= progress["rate_per_second"] <= 1.5 * RATE, progress
        if progress["eta_seconds"] is not None:
            assert abs(progress["eta_seconds"] - (finished - t)) <= max(4.0, 0.5 * (finished - t)), progress
    final = samples[-1][2]
    assert final["sent"] == READERS and final["duration_seconds"] is not None and final["duration_text"]


def test_pause_and_cancel_figures_during_a_real_send_are_true(transactional_db, settings):
    settings.SEND_RATE_LIMIT = RATE
    sink = SmtpSink().start()
    worker = _worker(sink)
    try:
        news = list_make("news")
        readers_make(news, READERS)
        issue = issue_make(news)
        assert services.issue_send(issue=issue)
        while services.issue_progress(issue=issue)["sent"] < 40:
            time.sleep(0.2)
        assert services.issue_pause(issue=issue)
        stopping_seen = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            _, before, progress, after = _sample(issue)
            _check_truthful(before, progress, after)
            assert progress["stopping"] == progress["in_flight"]
            stopping_seen.append(progress["stopping"])
            if not progress["stopping"]:
                break
            time.sleep(0.2)
        paused = services.issue_progress(issue=issue)
        time.sleep(2.5)  # longer than a batch at this rate: nothing more goes out while paused
        assert services.issue_progress(issue=issue)["sent"] == paused["sent"] == sink.tally.total

        assert services.issue_cancel(issue=issue)
        cancelled = services.issue_progress(issue=issue)
        assert cancelled["status"] == "cancelled" and cancelled["pending"] == 0 and cancelled["stopping"] == 0
        assert cancelled["cancelled"] == READERS - paused["sent"]
        assert cancelled["skipped"] == 0
        time.sleep(2.5)
        assert sink.tally.total == cancelled["sent"] == paused["sent"]
    finally:
        worker.stop()
        sink.stop()

"""What an operator sees during a real send: the workers' JSON log lines and /metrics.

Real worker processes, real Redis and PostgreSQL, a real SMTP server and a
provider API on loopback; nothing stands in for our own code.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
from django.conf import settings
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from issues import services
from issues.models import Delivery, Issue
from issues.selectors import ledger_counts
from tests.conftest import WorkerProcess, child_env
from tests.fakes.sinks import EspSink, SmtpSink
from tests.issues.ledger_helpers import issue_make, list_make, readers_make

pytestmark = [pytest.mark.worker, pytest.mark.slow]

FAST = {"SEND_RETRY_BASE_SECONDS": "0", "SEND_LANES": "2", "SITE_URL": "https://list.example.org"}
METRICS_TOKEN = "scrape-token-0123456789abcdef"


def _wait(predicate, *, timeout: float, step: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise AssertionError("timed out waiting")


def _status(issue: Issue) -> str:
    return Issue.objects.values_list("status", flat=True).get(pk=issue.pk)


def _log_lines(worker: WorkerProcess) -> list[dict]:
    """Return the worker's log lines after it said it was ready, each parsed (every one must be JSON).

    Celery's own console notices ("worker: Warm shutdown") are printed, not logged, and are left out.
    """
    text = worker.log.read_text()
    lines = text.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("{") and " ready." in line)
    parsed = []
    for line in lines[start:]:
        if line.strip() and not line.startswith("worker: "):
            parsed.append(json.loads(line))  # fails the test on any line that is not JSON
    return parsed


@pytest.fixture
def settings_fast(settings):
    # Importing the tasks modules sets Django up again in this process, which
    # reconfigures logging: done before the test, caplog keeps its handler.
    from dwvlist.celery import app

    app.loader.import_default_modules()
    settings.SEND_RETRY_BASE_SECONDS = 0
    settings.SEND_LANES = 2
    settings.SITE_URL = "https://list.example.org"
    return settings


def test_a_send_through_a_real_worker_logs_json_lines_that_tell_each_batch(transactional_db, settings_fast, caplog):
    sink = SmtpSink().start()
    news = list_make("news")
    readers_make(news, 120)
    refused = "reader000007@example.org"
    sink.replies[refused] = "550 5.1.1 <reader000007@example.org>: Recipient address rejected: no such user"
    issue = issue_make(news)
    worker = WorkerProcess(
        env=child_env(
            EMAIL_TRANSPORT="smtp",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=str(sink.port),
            SEND_BATCH_SIZE="25",
            LOG_FORMAT="json",
            **FAST,
        )
    )
    try:
        worker.wait_ready()
        caplog.set_level("INFO")
        assert services.issue_send(issue=issue)
        _wait(lambda: _status(issue) == "sent", timeout=120)
        time.sleep(0.5)  # the finishing batch's own line follows the issue's
    finally:
        worker.stop()
        sink.stop()

    # The web side: the send started; the worker writes the ledger, with its count and seconds.
    messages = [record.getMessage() for record in caplog.records]
    assert f"Issue sending started: issue {issue.pk}" in messages

    lines = _log_lines(worker)
    (ledger_line,) = [line for line in lines if line["message"].startswith("ledger written: 120")]
    assert ledger_line["issue_id"] == issue.pk and ledger_line["readers"] == 120 and ledger_line["seconds"] >= 0
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    assert all(line["time"].endswith("Z") for line in lines)
    raw = [json.dumps(line, sort_keys=True) for line in lines]
    assert not [line for line, count in Counter(raw).items() if count > 1], "a line was printed twice"

    batches = [line for line in lines if line["message"].startswith("batch recorded")]
    assert len(batches) >= 120 // 25
    for line in batches:
        assert line["issue_id"] == issue.pk
        assert line["provider"] == "smtp"
        assert len(line["batch"]) == 12
        assert line["seconds"] >= 0
        assert line["task"] == "issues.tasks.send_batch"
    assert len({line["batch"] for line in batches}) == len(batches)
    assert sum(line["sent"] for line in batches) == 119
    assert sum(line["failed"] for line in batches) == 1

    # The failure, in the provider's words, placed in its batch; the address hashed.
    (failure,) = [line for line in lines if line["message"].startswith("readers failed")]
    assert "550 5.1.1" in failure["message"] and "Recipient address rejected: no such user" in failure["message"]
    assert failure["level"] == "WARNING" and failure["issue_id"] == issue.pk and failure["batch"]
    assert failure["batch"] in {line["batch"] for line in batches if line["failed"]}
    (suppressed,) = [line for line in lines if line["message"].startswith("suppressed ")]
    assert suppressed["message"].startswith("suppressed addr:") and suppressed["reason"] == "rejected"

    (finished,) = [line for line in lines if line["message"].startswith("issue finished")]
    assert finished["issue_id"] == issue.pk
    assert (finished["sent"], finished["failed"], finished["recipients"]) == (119, 1, 120)

    # No reader's address anywhere in the worker's log.
    text = worker.log.read_text()
    assert "@example.org" not in text


@pytest.mark.skipif(
    "sqlite" in settings.DATABASES["default"]["ENGINE"],
    reason="retried batches from a worker and the test's polling contend for one SQLite file; CI runs PostgreSQL",
)
def test_refused_credentials_log_one_error_not_one_per_batch(transactional_db, settings_fast):
    esp = EspSink().start()
    esp.answer_status = 401
    esp.answer_body = {"message": "Invalid private key"}
    news = list_make("news")
    readers_make(news, 40)
    issue = issue_make(news)
    worker = WorkerProcess(
        env=child_env(
            EMAIL_TRANSPORT="mailgun",
            **esp.anymail_env("mailgun"),
            SEND_BATCH_SIZE="10",
            SEND_MAX_ATTEMPTS="3",
            LOG_FORMAT="json",
            **FAST,
        )
    )
    try:
        worker.wait_ready()
        assert services.issue_send(issue=issue)
        _wait(lambda: _status(issue) == "sent", timeout=120)
    finally:
        worker.stop()
        esp.stop()
    assert esp.posts >= 4 * 3, "every batch was tried, and tried again"
    lines = _log_lines(worker)
    # Ours only: on a loaded machine, stopping the worker may cut a retry
    # short, which Celery's own logger reports.
    errors = [line for line in lines if line["level"] == "ERROR" and not line["logger"].startswith("celery")]
    assert len(errors) == 1, errors
    (error,) = errors
    assert "refused our credentials" in error["message"]
    assert "401" in error["message"] and "Invalid private key" in error["message"]
    assert error["provider"] == "mailgun" and error["issue_id"] == issue.pk
    assert not [line for line in lines if line["message"].startswith("batch deferred")]
    failed = Delivery.objects.filter(issue=issue, status="failed")
    assert failed.count() == 40
    assert failed.first().last_error.startswith("gave up after 3 attempts: provider answered 401")


def _scrape(client: Client) -> dict[str, dict[tuple, float]]:
    """Return {sample name: {labels: value}} from /metrics, parsed by prometheus_client's parser."""
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def _deliveries(samples, issue_id: int) -> dict[str, int]:
    return {
        dict(labels)["status"]: int(value)
        for labels, value in samples["dwvlist_deliveries"].items()
        if dict(labels)["issue_id"] == str(issue_id)
    }


def test_metrics_scraped_during_a_send_by_two_workers_match_the_ledger(transactional_db, settings_fast):
    settings_fast.METRICS_TOKEN = METRICS_TOKEN
    # A worker an earlier test stopped leaves its heartbeat until it expires: only this test's two count.
    from dwvlist.redis import WORKER_PREFIX, redis_client

    stale = list(redis_client().scan_iter(f"{WORKER_PREFIX}*"))
    if stale:
        redis_client().delete(*stale)
    esp = EspSink().start()
    news = list_make("news")
    readers_make(news, 3000)
    issue = issue_make(news)
    env = child_env(
        EMAIL_TRANSPORT="mailgun",
        **esp.anymail_env("mailgun"),
        SEND_BATCH_SIZE="100",
        SEND_RATE_LIMIT="1000",
        LOG_FORMAT="json",
        **FAST,
    )
    workers = [WorkerProcess(env=env, concurrency=1), WorkerProcess(env=env, concurrency=1)]
    client = Client()
    try:
        for worker in workers:
            worker.wait_ready()
        assert services.issue_send(issue=issue)
        _wait(lambda: Delivery.objects.filter(issue=issue, status="sent").count() >= 500, timeout=60, step=0.05)
        during = _scrape(client)
        _wait(lambda: _status(issue) == "sent", timeout=120)
        time.sleep(0.5)  # the last batch's counters follow the issue's status
        after = _scrape(client)
    finally:
        for worker in workers:
            worker.stop()
        esp.stop()

    # Mid-send: the ledger is whole, part of it sent, both workers alive and seen.
    mid = _deliveries(during, issue.pk)
    assert sum(mid.values()) == 3000
    assert 500 <= mid["sent"] < 3000
    assert during["dwvlist_workers_alive"][()] == 2
    assert during["dwvlist_issues"][(("status", "sending"),)] == 1
    assert during["dwvlist_issue_send_rate"][(("issue_id", str(issue.pk)),)] >= 0
    assert {dict(labels)["queue"] for labels in during["dwvlist_celery_queue_length"]} == {"default", "bulk"}

    # After: every figure is the ledger's, and the counters add up both workers' batches.
    ledger = ledger_counts(issue_ids=[issue.pk])[issue.pk]
    final = _deliveries(after, issue.pk)
    assert final == {status: count for status, count in ledger.items() if status != "reclaimed"}
    assert final["sent"] == 3000
    assert after["dwvlist_messages_total"][(("outcome", "sent"), ("provider", "mailgun"))] == 3000
    batches = after["dwvlist_batches_total"][(("provider", "mailgun"),)]
    assert batches >= 30
    assert after["dwvlist_batch_duration_seconds_count"][(("provider", "mailgun"),)] == batches
    per_worker = [
        sum(1 for line in _log_lines(worker) if line["message"].startswith("batch recorded")) for worker in workers
    ]
    assert all(per_worker), "both workers sent batches"
    assert sum(per_worker) == batches
    assert after["dwvlist_issues"][(("status", "sent"),)] == 1
    assert after["dwvlist_metrics_collector_up"] == {
        (("collector", name),): 1.0 for name in ("RedisCollector", "IssuesCollector", "SubscriptionsCollector")
    }

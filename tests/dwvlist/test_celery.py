import pytest

from dwvlist.celery import app
from subscriptions.models import Subscriber
from subscriptions.tasks import probe


def test_sending_queue_is_configured_for_safe_redelivery():
    assert app.conf.task_routes["issues.tasks.send_batch"] == {"queue": "bulk"}
    assert {q.name for q in app.conf.task_queues} == {"default", "bulk"}
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.task_time_limit > app.conf.task_soft_time_limit
    assert app.conf.broker_transport_options["visibility_timeout"] > app.conf.task_time_limit
    assert "start-scheduled-issues" in app.conf.beat_schedule


@pytest.mark.worker
def test_round_trip_through_a_real_worker_sees_the_database(celery_worker):
    Subscriber.objects.create(email="one@example.org")
    Subscriber.objects.create(email="two@example.org")
    result = probe.delay().get(timeout=60)
    from django.db import connection

    assert result == {"vendor": connection.vendor, "subscribers": 2}
    assert not app.conf.task_always_eager


# Every task name a running deployment may hold in its queues. A name that
# disappears (a task moved without its name=) strands those tasks after an
# upgrade: add new names here, never remove one.
KNOWN_TASK_NAMES = {
    "dwvlist.tasks.probe",
    "issues.tasks.send_batch",
    "issues.tasks.start_due_issues",
    "issues.tasks.reap_stale_deliveries",
    "issues.tasks.complete_ledger",
    "issues.tasks.send_test",
    "issues.feedback_tasks.feedback_events_apply",
    "issues.feedback_tasks.feedback_events_drain",
    "issues.feedback_tasks.sweep_unapplied_events",
    "issues.bounces.mailbox_poll",
    "subscriptions.tasks.confirmation_mail",
    "subscriptions.tasks.welcome_mail",
    "subscriptions.tasks.address_change_mail",
    "subscriptions.tasks.preferences_link_mail",
    "subscriptions.import_tasks.import_job_process",
    "subscriptions.import_tasks.resume_stalled_imports",
}


def _registered_task_names() -> set[str]:
    app.loader.import_default_modules()  # what a worker imports at start
    return {name for name in app.tasks if not name.startswith("celery.")}


def test_no_task_name_a_deployment_may_have_queued_disappears():
    assert KNOWN_TASK_NAMES - _registered_task_names() == set()


def test_every_task_beat_runs_is_registered():
    scheduled = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert scheduled - _registered_task_names() == set()

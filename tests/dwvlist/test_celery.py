import pytest

from dwvlist.celery import app
from dwvlist.tasks import probe
from subscriptions.models import Subscriber


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

import pytest


@pytest.mark.worker
def test_healthz_is_ok_and_names_the_worker(client, celery_worker):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["status"] == "ok"
    assert body["broker"]["status"] == "ok"
    assert celery_worker.hostname in body["workers"]["seen"]


@pytest.mark.django_db
def test_healthz_is_503_naming_workers_when_none_was_seen(client, settings):
    # A Redis database where no worker has written a heartbeat.
    settings.REDIS_URL = settings.REDIS_URL.rsplit("/", 1)[0] + "/14"
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["workers"]["status"] == "down"
    assert response.json()["database"]["status"] == "ok"


@pytest.mark.django_db
def test_healthz_is_503_naming_the_broker_when_redis_is_down(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["broker"]["status"] == "down"
    assert body["status"] == "down"


@pytest.mark.django_db
def test_healthz_says_whether_beat_runs_without_failing_for_it(client):
    from dwvlist import heartbeat
    from dwvlist.redis import BEAT_PREFIX

    # This session's Redis database, emptied before each test: a worker, and beat only later.
    heartbeat.heartbeat_write(hostname="celery@host-a")
    try:
        body = client.get("/healthz").json()
        assert body["status"] == "ok"
        assert body["beat"] == {"status": "missing", "error": "no beat seen in the last minute"}
        heartbeat.heartbeat_write(hostname="host-a:4242", prefix=BEAT_PREFIX)
        body = client.get("/healthz").json()
        assert body["status"] == "ok"
        assert list(body["beat"]["seen"]) == ["host-a:4242"]
        assert "celery@host-a" in body["workers"]["seen"]
    finally:
        # Heartbeats outlive the per-test flush (live workers keep theirs): a made-up one must go.
        heartbeat.redis_client().delete(f"{heartbeat.WORKER_PREFIX}celery@host-a")

"""Worker liveness: every worker keeps a short-lived key in Redis.

/healthz reads these keys to say which workers were seen recently. A key
expires on its own, so a worker killed with SIGKILL disappears without
having to say goodbye. Celery beat keeps one too, so /healthz can say
whether the scheduler (scheduled issues, the reaper) is running.
"""

from __future__ import annotations

import os
import socket
import threading
import time

import redis
from celery.signals import beat_init, worker_ready, worker_shutdown
from django.conf import settings

from dwvlist.redis import BEAT_PREFIX, WORKER_PREFIX, redis_client

_stop = threading.Event()


def heartbeat_write(*, hostname: str, prefix: str = WORKER_PREFIX) -> None:
    """Record that the worker (or beat, with BEAT_PREFIX) named hostname is alive now."""
    redis_client().set(prefix + hostname, str(time.time()), ex=settings.WORKER_HEARTBEAT_MAX_AGE)


def _seen(prefix: str) -> dict[str, float]:
    client = redis_client()
    now = time.time()
    seen = {}
    for key in client.scan_iter(match=prefix + "*", count=100):
        value = client.get(key)
        if value is None:
            continue
        seen[key.decode().removeprefix(prefix)] = round(now - float(value), 1)
    return seen


def workers_seen() -> dict[str, float]:
    """Return {hostname: seconds since last heartbeat} for live workers."""
    return _seen(WORKER_PREFIX)


def beats_seen() -> dict[str, float]:
    """Return {host name and pid: seconds since last heartbeat} for running beat schedulers."""
    return _seen(BEAT_PREFIX)


def _beat(hostname: str, prefix: str = WORKER_PREFIX) -> None:
    while not _stop.is_set():
        try:
            heartbeat_write(hostname=hostname, prefix=prefix)
        except redis.RedisError:
            pass  # Redis is down; the key expires and /healthz reports it.
        _stop.wait(settings.WORKER_HEARTBEAT_INTERVAL)


@worker_ready.connect
def _start_heartbeat(sender=None, **kwargs) -> None:
    hostname = getattr(sender, "hostname", None) or "worker"
    _stop.clear()
    threading.Thread(target=_beat, args=(hostname,), name="dwvlist-heartbeat", daemon=True).start()


@worker_shutdown.connect
def _stop_heartbeat(sender=None, **kwargs) -> None:
    _stop.set()
    hostname = getattr(sender, "hostname", None)
    if hostname:
        try:
            redis_client().delete(WORKER_PREFIX + hostname)
        except redis.RedisError:
            pass


@beat_init.connect
def _start_beat_heartbeat(sender=None, **kwargs) -> None:
    # Named by host and process: two beats at once (a mistake) show as two.
    name = f"{socket.gethostname()}:{os.getpid()}"
    _stop.clear()
    threading.Thread(target=_beat, args=(name, BEAT_PREFIX), name="dwvlist-beat-heartbeat", daemon=True).start()

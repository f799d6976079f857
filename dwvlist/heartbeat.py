"""Worker liveness: every worker keeps a short-lived key in Redis.

/healthz reads these keys to say which workers were seen recently. A key
expires on its own, so a worker killed with SIGKILL disappears without
having to say goodbye.
"""

from __future__ import annotations

import threading
import time

import redis
from celery.signals import worker_ready, worker_shutdown
from django.conf import settings

from dwvlist.redis import WORKER_PREFIX, redis_client

_stop = threading.Event()


def heartbeat_write(*, hostname: str) -> None:
    """Record that the worker named hostname is alive now."""
    redis_client().set(WORKER_PREFIX + hostname, str(time.time()), ex=settings.WORKER_HEARTBEAT_MAX_AGE)


def workers_seen() -> dict[str, float]:
    """Return {hostname: seconds since last heartbeat} for live workers."""
    client = redis_client()
    now = time.time()
    seen = {}
    for key in client.scan_iter(match=WORKER_PREFIX + "*", count=100):
        value = client.get(key)
        if value is None:
            continue
        seen[key.decode().removeprefix(WORKER_PREFIX)] = round(now - float(value), 1)
    return seen


def _beat(hostname: str) -> None:
    while not _stop.is_set():
        try:
            heartbeat_write(hostname=hostname)
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

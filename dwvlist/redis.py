"""The one Redis client of each process, and the name of every key the project keeps in Redis.

Django's cache (rate limits, shared progress counts) and Celery's broker
talk to the same server through their own clients; everything else goes
through `redis_client()`.
"""

from __future__ import annotations

import hashlib
import os

import redis
from django.conf import settings

_clients: dict[tuple[str, int], redis.Redis] = {}


def redis_client() -> redis.Redis:
    """Return this process's Redis client for REDIS_URL (its pool keeps the connections open)."""
    key = (settings.REDIS_URL, os.getpid())
    client = _clients.get(key)
    if client is None:
        client = _clients[key] = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=10, socket_connect_timeout=10)
    return client


# --- Key names ---------------------------------------------------------------------------

WORKER_PREFIX = "dwvlist:worker:"  # + hostname: a live worker's heartbeat
BEAT_PREFIX = "dwvlist:beat:"  # + host name:pid: a running beat's heartbeat
SEND_BUCKET = "dwvlist:send:bucket"  # the token bucket of the sending rate, shared by all workers
SEND_PAUSE = "dwvlist:send:pause"  # set while the provider asked every worker to wait (429)
METRICS = "dwvlist:metrics"  # hash of the counters every process adds to, exported by /metrics
CREDENTIALS_REFUSED = "dwvlist:log:credentials-refused"  # set for a minute after that error is logged
BOUNCE_MAILBOX_LOCK = "dwvlist:bounces:mailbox"  # held while one worker reads the bounce mailbox
FEEDBACK_PENDING = "dwvlist:feedback:pending"  # stream of provider events accepted, not yet stored
FEEDBACK_DRAIN_QUEUED = "dwvlist:feedback:drain-queued"  # + ":N": set while drain task N is queued or running
DASHBOARD_KEY = "dwvlist:dashboard"  # cache key of the editor home's figures, counted by beat


def issue_alive_key(issue_id: int) -> str:
    """Return the key a worker sets while it sends the issue."""
    return f"dwvlist:issue:{issue_id}:alive"


def issue_ledger_key(issue_id: int) -> str:
    """Return the key set while the issue's ledger is written."""
    return f"dwvlist:issue:{issue_id}:ledger"


def issue_cursor_key(issue_id: int) -> str:
    """Return the key holding the next ledger id range to claim for the issue."""
    return f"dwvlist:issue:{issue_id}:cursor"


def progress_counts_key(stamp: str) -> str:
    """Return the cache key of the issue's shared ledger counts (`stamp` names the issue and its start)."""
    return f"dwvlist:progress-counts:{stamp}"


def progress_rate_key(stamp: str) -> str:
    """Return the cache key of the issue's last measured sending rate."""
    return f"dwvlist:progress-rate:{stamp}"


def mailgun_token_key(token: str) -> str:
    """Return the key that marks a Mailgun webhook signature's token as used (it expires with the signature)."""
    return f"dwvlist:webhook:mailgun-token:{hashlib.sha256(token.encode()).hexdigest()}"


def api_rate_key(token_id: int, window: int) -> str:
    """Return the cache key counting an API token's calls in one minute window."""
    return f"ratelimit:api:{token_id}:{window}"


def report_key(issue_id: int, stamp: str) -> str:
    """Return the cache key of a finished issue's report figures (`stamp`: when the issue last changed)."""
    return f"dwvlist:report:{issue_id}:{stamp}"

"""Provider events waiting in Redis between their webhook request and the database.

Mailgun posts one event per request, many requests at once, and a commit
per request is most of what such a request costs; SendGrid posts a
thousand events at a time, and storing them in the request makes the
provider wait. So a request puts its events, classified and trimmed to
their columns, on a Redis stream and answers. Whoever holds the drain lock
stores what is waiting in groups of up to FEEDBACK_DRAIN_BATCH with the
bulk path (issues.feedback.receive): one lookup, one insert, grouped
effects, one commit per group, however many requests brought it.

A request bringing at most FEEDBACK_INLINE_EVENTS events that finds the lock
free drains the stream itself, so on a quiet server an event is stored and
applied before the provider hears 200, exactly as before. Otherwise a drain
task is queued (at most one at a time: a flag in Redis) and a worker drains
until the stream is empty.

Nothing is lost in between: an entry leaves the stream only after the group
holding it is committed. A drain that dies half-way leaves its entries for
the next one (the beat sweep drains too, should a task be lost); storing is
idempotent (ON CONFLICT DO NOTHING on the provider's event id), so a group
stored twice changes nothing. If Redis cannot take the events, the request
stores them itself.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from dwvlist.celery import task_queue
from dwvlist.redis import FEEDBACK_DRAIN_LOCK, FEEDBACK_DRAIN_QUEUED, FEEDBACK_PENDING, redis_client
from issues.feedback.events import events_stored_report
from issues.feedback.intake import Incoming
from issues.feedback.receive import Outcome, items_receive
from issues.feedback.rules import events_queue

logger = logging.getLogger(__name__)

DRAIN_TASK = "issues.feedback_tasks.feedback_events_drain"
# A drain holds its lock this long at most (a group takes well under a
# second); should it die, the next drain goes on after that.
_LOCK_SECONDS = 60
_FIELDS = ("provider", "event_type", "key", "recipient", "message_id", "reject_reason", "description", "metadata")


def _encode(item: Incoming) -> bytes:
    fields = {name: getattr(item, name) for name in _FIELDS}
    fields["occurred_at"] = item.occurred_at.isoformat() if item.occurred_at else None
    # The payload is JSON already: spliced in, not encoded twice.
    return (json.dumps(fields, default=str)[:-1] + ', "payload": ' + item.payload_json + "}").encode()


def _decode(raw: bytes) -> Incoming:
    fields = json.loads(raw)
    occurred_at = fields.pop("occurred_at")
    payload = fields.pop("payload")
    return Incoming(
        **fields,
        occurred_at=datetime.fromisoformat(occurred_at) if occurred_at else None,
        payload=payload,
        payload_json=json.dumps(payload),
    )


def events_accept(items: list[Incoming]) -> Outcome | None:
    """Put the request's events on the stream and store them here if that is quick; return what was stored here.

    None: they wait for a worker. Raises redis.RedisError if Redis could not
    take them (the caller stores them itself).
    """
    if not items:
        return Outcome()
    client = redis_client()
    inline = len(items) <= settings.FEEDBACK_INLINE_EVENTS
    token = secrets.token_hex(16)
    # One round trip: the events, and (for a few) the drain lock with the
    # stream's length, which says whether anything else is waiting.
    pipe = client.pipeline(transaction=False)
    for item in items:
        pipe.xadd(FEEDBACK_PENDING, {"e": _encode(item)})
    if inline:
        pipe.set(FEEDBACK_DRAIN_LOCK, token, nx=True, px=_LOCK_SECONDS * 1000)
        pipe.xlen(FEEDBACK_PENDING)
    *entry_ids, locked, waiting = pipe.execute() if inline else [*pipe.execute(), None, None]
    if not locked:
        drain_queue()
        return None
    more = False
    try:
        if waiting == len(items):  # ours alone: stored from memory, no need to read them back
            outcome = _group_store(items)
            client.xdel(FEEDBACK_PENDING, *entry_ids)
        else:  # the oldest group first; a backlog beyond it goes to the worker
            outcome, more = _drain_group(client)
    except Exception:  # the events are safe on the stream: a worker tries again
        logger.exception("Storing %d pending events failed; leaving them for a worker", len(items))
        outcome, more = None, True
    finally:
        client.lock(FEEDBACK_DRAIN_LOCK).do_release(token)
    if more:
        drain_queue()
    return outcome


def drain_queue() -> None:
    """Queue a drain task, unless one is queued or running already."""
    client = redis_client()
    if not client.set(FEEDBACK_DRAIN_QUEUED, socket.gethostname(), nx=True, ex=_LOCK_SECONDS):
        return
    try:
        task_queue(DRAIN_TASK)
    except Exception:  # the broker is away: the next request, or beat's sweep, drains them
        logger.exception("Could not queue the drain of the pending provider events")
        client.delete(FEEDBACK_DRAIN_QUEUED)


def events_drain(*, wait: float = 10.0) -> int:
    """Store and apply every waiting event, group by group; return how many entries were taken.

    While requests keep the lock busy (they drain too), waits up to `wait`
    seconds for it, then queues a new drain to try again later.
    """
    client = redis_client()
    lock = client.lock(FEEDBACK_DRAIN_LOCK, timeout=_LOCK_SECONDS, blocking=True, blocking_timeout=wait)
    if not lock.acquire():
        client.delete(FEEDBACK_DRAIN_QUEUED)
        drain_queue()
        return 0
    taken = 0
    try:
        while True:
            outcome, more = _drain_group(client)
            taken += outcome.taken
            lock.extend(_LOCK_SECONDS, replace_ttl=True)
            if more:
                continue
            # Clear the flag before the last look, so an event added after
            # that look queues a new drain.
            client.delete(FEEDBACK_DRAIN_QUEUED)
            if not client.xlen(FEEDBACK_PENDING):
                return taken
    finally:
        lock.release()


def _drain_group(client) -> tuple[Outcome, bool]:
    """Store one group of waiting events; return the outcome and whether more are waiting."""
    batch = settings.FEEDBACK_DRAIN_BATCH
    entries = client.xrange(FEEDBACK_PENDING, count=batch)
    if not entries:
        return Outcome(), False
    items = []
    for entry_id, fields in entries:
        try:
            items.append(_decode(fields[b"e"]))
        except (KeyError, ValueError, TypeError):
            logger.exception("Dropping an unreadable pending event %s: %r", entry_id, fields)
    outcome = _group_store(items)
    outcome.taken = len(entries)
    client.xdel(FEEDBACK_PENDING, *[entry_id for entry_id, _ in entries])
    return outcome, len(entries) == batch


def _group_store(items: list[Incoming]) -> Outcome:
    """Store and apply a group of events (what had no time goes to Celery), and count them."""
    outcome = items_receive(items)
    events_stored_report(events=outcome.stored, received_at=timezone.now())
    if outcome.deferred:
        events_queue(event_ids=outcome.deferred)
    return outcome

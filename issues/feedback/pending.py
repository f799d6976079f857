"""Provider events waiting in Redis between their webhook request and the database.

Mailgun posts one event per request, many requests at once, and a commit
per request is most of what such a request costs; SendGrid posts a
thousand events at a time, and storing them in the request makes the
provider wait. So a request puts its events, classified and trimmed to
their columns, on a Redis stream and answers; drain tasks (up to
FEEDBACK_DRAINERS at once, each reading its own entries through a consumer
group) store what is waiting in groups of up to FEEDBACK_DRAIN_BATCH with
the bulk path (issues.feedback.receive): one lookup, one insert, grouped
effects, one commit per group, however many requests brought it.

A request bringing at most FEEDBACK_INLINE_EVENTS events that finds nothing
else on the stream stores them itself, so on a quiet server an event is
stored and applied before the provider hears 200, exactly as before.

Nothing is lost in between: an entry leaves the stream only after the group
holding it is committed. A drain that dies half-way leaves its entries
pending, and the next drain claims them once they have been idle for
_STALE_MS (beat's sweep drains too, should a task be lost). Storing is
idempotent (ON CONFLICT DO NOTHING on the provider's event id), so an entry
stored twice changes nothing. If Redis cannot take the events, the request
stores them itself.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from datetime import datetime

import redis
from django.conf import settings
from django.utils import timezone

from dwvlist.celery import task_queue
from dwvlist.redis import FEEDBACK_DRAIN_QUEUED, FEEDBACK_PENDING, redis_client
from issues.feedback.events import events_stored_report
from issues.feedback.intake import Incoming
from issues.feedback.receive import Outcome, items_receive
from issues.feedback.rules import events_queue

logger = logging.getLogger(__name__)

DRAIN_TASK = "issues.feedback_tasks.feedback_events_drain"
_GROUP = "store"
# A drain's flag lasts this long at most; entries a drain took and left
# unacknowledged this long (it died) are claimed by the next one.
_FLAG_SECONDS = 60
_STALE_MS = 60_000
# A drain waits this long for more events before it ends (a burst's next
# posts go to it, not each to its own commit).
_LINGER_MS = 1000
# Events that waited this long mean no drain is running (no worker, or all
# busy): a request then stores its own itself, as on a quiet server.
_STUCK_SECONDS = 30
# A group that is not full waits this long for more (a burst's next posts).
_GATHER_SECONDS = 0.05
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
    """Put the request's events on the stream and store them here if nothing else waits; return what was stored here.

    None: they wait for a drain. Raises redis.RedisError if Redis could not
    take them (the caller stores them itself).
    """
    if not items:
        return Outcome()
    client = redis_client()
    # One round trip, atomic (MULTI): the events, the stream's length and
    # whether a drain runs, so of two requests at once one sees the other's.
    pipe = client.pipeline(transaction=True)
    for item in items:
        pipe.xadd(FEEDBACK_PENDING, {"e": _encode(item)})
    pipe.xlen(FEEDBACK_PENDING)
    pipe.exists(*_flags())
    pipe.xrange(FEEDBACK_PENDING, count=1)
    *entry_ids, waiting, draining, oldest = pipe.execute()
    alone = waiting == len(items) and not draining
    if len(items) > settings.FEEDBACK_INLINE_EVENTS or not (alone or _stuck(oldest)):
        if not draining:  # a running drain takes ours too (and calls for help with a backlog)
            drain_queue()
        return None
    if not alone:  # nothing drains what waits (no worker?): ours at least are stored, and a drain asked for
        drain_queue()
    # Ours alone: stored from memory, then taken off the stream. Should a
    # drain read them in between, storing them twice changes nothing.
    try:
        outcome = _group_store(items)
    except Exception:  # the events are safe on the stream: a drain tries again
        logger.exception("Storing %d events failed; leaving them for a drain", len(items))
        drain_queue()
        return None
    client.xdel(FEEDBACK_PENDING, *entry_ids)
    return outcome


def _flags() -> list[str]:
    return [f"{FEEDBACK_DRAIN_QUEUED}:{slot}" for slot in range(settings.FEEDBACK_DRAINERS)]


def _stuck(oldest: list) -> bool:
    """Return True if the oldest waiting entry has waited over _STUCK_SECONDS (its id is its time in ms)."""
    if not oldest:
        return False
    added_ms = int(oldest[0][0].split(b"-")[0])
    return time.time() * 1000 - added_ms > _STUCK_SECONDS * 1000


def drain_queue() -> None:
    """Queue a drain task, unless FEEDBACK_DRAINERS are queued or running already."""
    client = redis_client()
    for slot, flag in enumerate(_flags()):
        if client.set(flag, socket.gethostname(), nx=True, ex=_FLAG_SECONDS):
            try:
                task_queue(DRAIN_TASK, slot)
            except Exception:  # the broker is away: the next request, or beat's sweep, drains them
                logger.exception("Could not queue a drain of the waiting provider events")
                client.delete(flag)
            return


def events_drain(*, slot: int | None = None) -> int:
    """Store and apply waiting events, group by group, until none have come for a while; return how many.

    `slot` is the drain's flag (None: beat's sweep, which holds none and
    does not wait). While a drain runs, requests leave their events to it;
    it gathers what arrives for _GATHER_SECONDS before storing a group that
    is not full, so a burst of single-event posts is stored many to a
    commit. A drain that takes a full group queues another, so a backlog is
    drained by FEEDBACK_DRAINERS at once.
    """
    client = redis_client()
    consumer = f"{socket.gethostname()}:{os.getpid()}:{'sweep' if slot is None else slot}"
    flag = None if slot is None else f"{FEEDBACK_DRAIN_QUEUED}:{slot}"
    batch = settings.FEEDBACK_DRAIN_BATCH
    # Entries a dead drain left are claimed first; new ones after.
    entries = _entries_stale(client, consumer)
    taken = 0
    while True:
        if not entries:
            entries = _entries_new(client, consumer, count=batch, block=None if flag is None else _LINGER_MS)
        if not entries and flag is not None:
            # Clear the flag before a last look, so an event added after
            # that look queues a new drain.
            client.delete(flag)
            entries = _entries_new(client, consumer, count=batch, block=None)
            if entries:
                client.set(flag, socket.gethostname(), ex=_FLAG_SECONDS)
        if not entries:
            return taken
        if len(entries) < batch and flag is not None:
            time.sleep(_GATHER_SECONDS)
            entries += _entries_new(client, consumer, count=batch - len(entries), block=None)
        if flag is not None:
            client.expire(flag, _FLAG_SECONDS)
        if len(entries) == batch:
            drain_queue()
        taken += _entries_store(client, entries)
        entries = []


def _group_ensure(client) -> None:
    try:  # the first drain, or Redis was emptied: from the stream's start
        client.xgroup_create(FEEDBACK_PENDING, _GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _entries_stale(client, consumer: str) -> list:
    """Take the entries a dead drain took and left unacknowledged for _STALE_MS."""
    try:
        _next, claimed, *_ = client.xautoclaim(
            FEEDBACK_PENDING, _GROUP, consumer, _STALE_MS, count=settings.FEEDBACK_DRAIN_BATCH
        )
    except redis.ResponseError as exc:
        if "NOGROUP" not in str(exc):
            raise
        _group_ensure(client)
        return []
    return claimed


def _entries_new(client, consumer: str, *, count: int, block: int | None) -> list:
    """Take up to `count` entries no drain has taken, waiting up to `block` ms for one."""
    try:
        found = client.xreadgroup(_GROUP, consumer, {FEEDBACK_PENDING: ">"}, count=count, block=block)
    except redis.ResponseError as exc:
        if "NOGROUP" not in str(exc):
            raise
        _group_ensure(client)
        return _entries_new(client, consumer, count=count, block=block)
    return found[0][1] if found else []


def _entries_store(client, entries: list) -> int:
    """Store a group of entries and take them off the stream; return how many there were."""
    items = []
    for entry_id, fields in entries:
        try:
            items.append(_decode(fields[b"e"]))
        except (KeyError, ValueError, TypeError):
            logger.exception("Dropping an unreadable waiting event %s: %r", entry_id, fields)
    _group_store(items)
    ids = [entry_id for entry_id, _ in entries]
    pipe = client.pipeline(transaction=False)
    pipe.xack(FEEDBACK_PENDING, _GROUP, *ids)
    pipe.xdel(FEEDBACK_PENDING, *ids)
    pipe.execute()
    return len(entries)


def _group_store(items: list[Incoming]) -> Outcome:
    """Store and apply a group of events (what had no time goes to Celery), and count them."""
    outcome = items_receive(items)
    events_stored_report(events=outcome.stored, received_at=timezone.now())
    if outcome.deferred:
        events_queue(event_ids=outcome.deferred)
    return outcome

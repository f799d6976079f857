"""Read the bounce mailbox (BOUNCE_MAILBOX_URL) over IMAP or POP3, on beat's schedule.

Messages are fetched in groups of FETCH_CHUNK, each group handed to the
intake in one transaction, and only once it is committed are its messages
deleted (IMAP: copied to BOUNCE_MAILBOX_MOVE_TO if set, flagged \\Deleted
and expunged, over a second session while the first reads the next group;
POP3: DELE, committed by QUIT). A message whose intake failed (the database
did not answer) stays for the next poll; a message read twice records
nothing new. One worker reads the mailbox at a time (a lock in Redis).
"""

from __future__ import annotations

import logging
import poplib
import ssl
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from django.conf import settings

from dwvlist.redis import BOUNCE_MAILBOX_LOCK, redis_client
from issues.feedback.bounces.intake import bounces_receive

logger = logging.getLogger(__name__)

POLL_LIMIT = 1000  # messages per poll; the rest wait for the next one
FETCH_CHUNK = 100
DELETED = b"\\Deleted"
DEFAULT_PORTS = {"imap": 143, "imaps": 993, "pop3": 110, "pop3s": 995}


@dataclass(frozen=True)
class MailboxAddress:
    scheme: str
    host: str
    port: int
    user: str
    password: str
    folder: str


@dataclass
class PollResult:
    read: int = 0
    recorded: int = 0  # events stored
    removed: int = 0  # messages deleted or moved
    failed: int = 0  # left in the mailbox for the next poll


def mailbox_address(url: str) -> MailboxAddress:
    """Return the parts of a BOUNCE_MAILBOX_URL; raise ValueError naming what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS:
        raise ValueError("BOUNCE_MAILBOX_URL must start with imap://, imaps://, pop3:// or pop3s://")
    if not parts.hostname or not parts.username:
        raise ValueError("BOUNCE_MAILBOX_URL must name a user and a host, e.g. imaps://user:pass@host/INBOX")
    folder = unquote(parts.path.strip("/")) or "INBOX"
    return MailboxAddress(
        scheme=parts.scheme,
        host=parts.hostname,
        port=parts.port or DEFAULT_PORTS[parts.scheme],
        user=unquote(parts.username),
        password=unquote(parts.password or ""),
        folder=folder,
    )


def _imap_connect(address: MailboxAddress):
    from imapclient import IMAPClient

    secure = address.scheme == "imaps"
    context = ssl.create_default_context() if secure else None
    client = IMAPClient(address.host, port=address.port, ssl=secure, ssl_context=context, timeout=30)
    client.login(address.user, address.password)
    client.select_folder(address.folder)
    return client


def _imap_remove(client, uids: list[int], move_to: str) -> None:
    """Delete committed messages: copied to `move_to` if set, flagged \\Deleted, expunged."""
    if move_to:
        client.copy(uids, move_to)
    client.add_flags(uids, [DELETED])
    client.expunge()


def _imap_poll(address: MailboxAddress, limit: int) -> PollResult:
    result = PollResult()
    move_to = settings.BOUNCE_MAILBOX_MOVE_TO
    # A second session deletes each committed group while the first reads
    # the next: Dovecot's expunge costs about as much as all the rest.
    with _imap_connect(address) as client, _imap_connect(address) as remover, ThreadPoolExecutor(1) as removing:
        uids = client.search(["NOT", "DELETED"])[:limit]
        removal: Future | None = None
        for start in range(0, len(uids), FETCH_CHUNK):
            chunk = uids[start : start + FETCH_CHUNK]
            fetched = client.fetch(chunk, ["BODY.PEEK[]"])
            # Expunged by someone else meanwhile: no body.
            found = [(uid, fetched[uid][b"BODY[]"]) for uid in chunk if b"BODY[]" in fetched.get(uid, {})]
            results = bounces_receive(raws=[raw for _, raw in found], source="imap")
            result.read += len(found)
            done = []
            for (uid, _), received in zip(found, results, strict=True):
                if received is None:
                    result.failed += 1
                    logger.warning("Bounce mailbox: message uid %s not recorded; left for the next poll", uid)
                else:
                    result.recorded += received.recorded
                    done.append(uid)
            if removal is not None:
                removal.result()  # the group before is gone (or its failure ends the poll here)
                removal = None
            if done:
                removal = removing.submit(_imap_remove, remover, done, move_to)
                result.removed += len(done)
        if removal is not None:
            removal.result()
    return result


def _pop3_poll(address: MailboxAddress, limit: int) -> PollResult:
    result = PollResult()
    if address.scheme == "pop3s":
        client: poplib.POP3 = poplib.POP3_SSL(
            address.host, address.port, timeout=30, context=ssl.create_default_context()
        )
    else:
        client = poplib.POP3(address.host, address.port, timeout=30)
    try:
        client.user(address.user)
        client.pass_(address.password)
        count, _ = client.stat()
        for start in range(1, min(count, limit) + 1, FETCH_CHUNK):
            numbers = list(range(start, min(start + FETCH_CHUNK, min(count, limit) + 1)))
            raws = [b"\r\n".join(client.retr(number)[1]) + b"\r\n" for number in numbers]
            result.read += len(raws)
            for number, received in zip(numbers, bounces_receive(raws=raws, source="pop3"), strict=True):
                if received is None:
                    result.failed += 1
                    logger.warning("Bounce mailbox: POP3 message %s not recorded; left for the next poll", number)
                    continue
                result.recorded += received.recorded
                client.dele(number)
                result.removed += 1
    finally:
        # QUIT commits the deletions of the messages recorded, even after a failure.
        try:
            client.quit()
        except (poplib.error_proto, OSError):
            client.close()
    return result


def mailbox_poll(*, url: str, limit: int = POLL_LIMIT) -> PollResult | None:
    """Read up to `limit` messages from the mailbox; return what came of them, or None if another worker is at it."""
    address = mailbox_address(url)
    lock = redis_client().lock(BOUNCE_MAILBOX_LOCK, timeout=max(60, settings.CELERY_TASK_TIME_LIMIT))
    if not lock.acquire(blocking=False):
        return None
    try:
        poll = _imap_poll if address.scheme.startswith("imap") else _pop3_poll
        result = poll(address, limit)
    finally:
        try:
            lock.release()
        except Exception:  # expired meanwhile: the next poll simply takes it
            logger.warning("Bounce mailbox lock had expired before the poll ended")
    logger.info(
        "Bounce mailbox read: %d messages, %d events recorded, %d removed, %d left for the next poll",
        result.read,
        result.recorded,
        result.removed,
        result.failed,
    )
    return result

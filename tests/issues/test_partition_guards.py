"""What keeps a worker cut off by the network from mailing a reader again once it is back.

The whole story runs in tests/deploy/test_partition.py (two network
namespaces, a link cut mid-send); these are its two guards, each shown alone.
"""

from __future__ import annotations

import socket
import threading

import pytest

from issues.delivery import batch
from issues.delivery.transports.base import Envelope
from issues.delivery.transports.smtp import SmtpTransport
from issues.models import Delivery
from tests.fakes.sinks import SmtpSink
from tests.issues.ledger_helpers import (
    issue_drain,
    issue_make,
    issue_start_here,
    list_make,
    readers_make,
    recipients_unsaved,
)


@pytest.fixture
def sink(settings):
    running = SmtpSink().start()
    settings.EMAIL_TRANSPORT = "smtp"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = running.port
    yield running
    running.stop()


@pytest.mark.django_db(transaction=True)
def test_a_claim_that_took_over_half_the_claim_timeout_is_released_unsent(sink, settings, monkeypatch):
    settings.SEND_CLAIM_TIMEOUT = 600
    news = list_make("news")
    readers_make(news, 30)
    issue = issue_make(news)
    issue_start_here(issue)
    claim = batch._batch_claim

    def claim_answered_late(issue, size, token):
        rows = claim(issue, size, token)
        # The database's answer arrived 301 s after the claim was sent (the link was down).
        clock = batch.time.monotonic() + 301
        monkeypatch.setattr(batch.time, "monotonic", lambda: clock)
        return rows

    monkeypatch.setattr(batch, "_batch_claim", claim_answered_late)
    result = batch.batch_send(issue_id=issue.pk)
    assert result.claimed == 30 and result.sent == 0
    assert sink.tally.total == 0
    rows = Delivery.objects.filter(issue=issue)
    assert set(rows.values_list("status", flat=True)) == {"pending"}
    assert not rows.filter(reclaimed_at__isnull=False).exists(), "nothing went out, so nothing is a possible repeat"
    assert set(rows.values_list("claim_token", flat=True)) == {""}

    monkeypatch.undo()
    issue_drain(issue)
    assert sink.tally.unique == 30 and sink.tally.duplicates == 0


def _silent_after_data_server(server: socket.socket, seen: dict) -> None:
    """Speak SMTP up to DATA and the message body, then never answer: a partition, as the client sees it."""
    conn, _ = server.accept()
    with conn:
        conn.sendall(b"220 sink ESMTP\r\n")
        received = b""
        while not received.upper().startswith((b"EHLO", b"HELO")) or not received.endswith(b"\r\n"):
            received += conn.recv(4096)
        conn.sendall(b"250-sink\r\n250 PIPELINING\r\n")
        received = b""
        while b"DATA\r\n" not in received:
            received += conn.recv(4096)
        conn.sendall(b"250 OK\r\n250 OK\r\n354 go on\r\n")
        try:
            while chunk := conn.recv(65536):
                received += chunk
            seen["ended"] = "closed"
        except ConnectionResetError:
            seen["ended"] = "reset"
        seen["received"] = received


def test_a_timed_out_smtp_connection_is_reset_not_closed_gracefully(settings):
    server = socket.create_server(("127.0.0.1", 0))
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.getsockname()[1]
    settings.EMAIL_TIMEOUT = 1
    seen: dict = {}
    thread = threading.Thread(target=_silent_after_data_server, args=(server, seen), daemon=True)
    thread.start()
    envelope = Envelope(
        issue_id=1,
        subject="S",
        html="<p>x</p>",
        text="x",
        from_email="news@lists.example.org",
        from_name="N",
        reply_to="",
    )
    outcomes = SmtpTransport().send(envelope=envelope, recipients=recipients_unsaved(3))
    thread.join(timeout=10)
    server.close()
    assert {outcome.status for outcome in outcomes.values()} == {"transient"}
    # No QUIT, no graceful close: a reset, so nothing still queued in the kernel
    # can reach the server later, when the network comes back.
    assert seen["ended"] == "reset"
    assert b"QUIT" not in seen["received"]

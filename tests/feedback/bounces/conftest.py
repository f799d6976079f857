"""Fixtures for the SMTP path's feedback: a real SMTP server, an issue sent through it, returned mail from samples."""

from __future__ import annotations

from pathlib import Path

import pytest

from issues.models import Delivery, Issue
from tests.fakes.sinks import SmtpSink
from tests.issues.ledger_helpers import issue_drain, issue_make, issue_start_here, list_make, readers_make

SAMPLES = Path(__file__).parent / "samples"
BOUNCE_ADDRESS = "bounces@lists.example.org"


@pytest.fixture
def smtp_sink(settings):
    sink = SmtpSink(keep_messages=True).start()
    settings.EMAIL_TRANSPORT = "smtp"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = sink.port
    settings.SEND_RETRY_BASE_SECONDS = 0
    settings.SITE_URL = "https://list.example.org"
    settings.BOUNCE_ADDRESS = BOUNCE_ADDRESS
    yield sink
    sink.stop()


def issue_sent(*, readers: int = 3, slug: str = "news", start: int = 0, mailing_list=None, **list_fields) -> Issue:
    """Send a new issue to `readers` readers through the SMTP sink; return it."""
    news = mailing_list or list_make(slug, **list_fields)
    if mailing_list is None:
        readers_make(news, readers, start=start)
    issue = issue_make(news)
    issue_start_here(issue)
    issue_drain(issue)
    return issue


def returned_mail(name: str, delivery: Delivery, sink: SmtpSink | None = None, **replace: str) -> bytes:
    """Return the sample mail `name` as it would come back for the delivery's copy.

    {VERP} is the envelope sender the copy went out with (from the sink, or
    none), {RCPT} the reader's address, {MSGID} the copy's Message-ID.
    """
    raw = (SAMPLES / f"{name}.eml").read_bytes()
    values = {
        "{VERP}": (sink.senders.get(delivery.email.lower(), "") if sink else "") or BOUNCE_ADDRESS,
        "{RCPT}": delivery.email,
        "{MSGID}": delivery.provider_message_id.strip("<>"),
        "{BOUNCES}": BOUNCE_ADDRESS,
        **replace,
    }
    for mark, value in values.items():
        raw = raw.replace(mark.encode(), value.encode())
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")

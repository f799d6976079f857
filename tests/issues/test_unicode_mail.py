"""Real names and real subjects through the SMTP path: every copy parses strictly and reads as it was typed."""

from __future__ import annotations

import pytest

from issues.delivery import mime
from issues.delivery.transports.smtp import NO_SMTPUTF8
from issues.models import Delivery
from tests.fakes.sinks import SmtpSink
from tests.issues.ledger_helpers import issue_drain, issue_start_here
from tests.issues.unicode_corpus import (
    IDN,
    LISTS,
    READERS,
    REPLY_TO,
    SUBJECT,
    UTF8_LOCAL,
    corpus_make,
    display,
    headers_strict,
    parse_strict,
    wire_checks,
)


def _sink(settings, *, smtputf8: bool) -> SmtpSink:
    sink = SmtpSink(keep_messages=True, smtputf8=smtputf8).start()
    settings.EMAIL_TRANSPORT = "smtp"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = sink.port
    settings.SITE_URL = "https://list.example.org"
    return sink


def _check_copies(sink: SmtpSink, lists) -> set[str]:
    """Assert every received copy against the corpus; return the addresses that got one."""
    names = {address: name for name, address in READERS}
    names[IDN[1]] = names[IDN[0]]
    list_names = {f"{slug}.list.example.org": (name, from_name) for slug, name, from_name in LISTS}
    received = set()
    for raw in sink.tally.messages:
        wire_checks(raw)
        message = headers_strict(raw)
        assert message["Subject"] == SUBJECT
        name, address = display(message["To"])
        assert name == names[address]
        received.add(address)
        list_name, list_id = str(message["List-Id"]).rpartition(" <")[::2]
        expected_name, _ = list_names[list_id.rstrip(">")]
        assert list_name.strip('"') == expected_name
        # Sender and Reply-To are the issue's first list's, whichever list the reader is on.
        assert display(message["From"]) == (LISTS[0][2], "detroit@lists.example.org")
        assert display(message["Reply-To"]) == ("", REPLY_TO[1])
        message = parse_strict(raw)
        text = message.get_body(("plain",))
        assert text["Content-Transfer-Encoding"] in ("7bit", "8bit", "quoted-printable")
        content = text.get_content()
        assert "Les ouvrières ont parlé." in content and "労働者は団結する。" in content
        assert "\n.a line that starts with a dot" in content  # dot-stuffing undone by the server
        html = message.get_body(("html",)).get_content()
        assert "απεργία συνεχίζεται." in html
    return received


@pytest.mark.django_db(transaction=True)
def test_unicode_corpus_through_smtp_with_smtputf8(settings):
    sink = _sink(settings, smtputf8=True)
    try:
        issue, lists = corpus_make()
        issue_start_here(issue)
        issue_drain(issue)
    finally:
        sink.stop()
    received = _check_copies(sink, lists)
    assert received == {address for _, address in READERS} - {IDN[0]} | {IDN[1]}
    assert set(sink.tally.recipients) == {a.lower() for a in received}
    assert Delivery.objects.filter(issue=issue, status="sent").count() == len(READERS)
    # The UTF-8 local part went as raw UTF-8 (RFC 6532) in its SMTPUTF8 transaction.
    utf8 = [raw for raw in sink.tally.messages if UTF8_LOCAL.encode() in raw]
    assert len(utf8) == 1 and b"To: =?utf-8?b?Sm9zw6kgTWFydMOtbmV6?= <jos\xc3\xa9@example.org>" in utf8[0]


@pytest.mark.django_db(transaction=True)
def test_without_smtputf8_only_the_utf8_address_fails_with_a_clear_reason(settings):
    sink = _sink(settings, smtputf8=False)
    try:
        issue, lists = corpus_make()
        issue_start_here(issue)
        issue_drain(issue)
    finally:
        sink.stop()
    received = _check_copies(sink, lists)
    assert UTF8_LOCAL not in received and len(received) == len(READERS) - 1
    failed = Delivery.objects.get(issue=issue, status="failed")
    assert failed.email == UTF8_LOCAL
    assert failed.last_error == NO_SMTPUTF8
    assert Delivery.objects.filter(issue=issue, status="sent").count() == len(READERS) - 1
    issue.refresh_from_db()
    assert issue.status == "sent"


@pytest.mark.django_db(transaction=True)
def test_a_reader_whose_copy_cannot_be_built_fails_alone(settings):
    from subscriptions.models import Subscriber

    sink = _sink(settings, smtputf8=True)
    try:
        issue, _ = corpus_make()
        # A domain with no IDNA form (a label over 63 characters): the address cannot go on the wire.
        Subscriber.objects.filter(email="plain@example.org").update(email="plain@" + "ü" * 70 + ".example")
        issue_start_here(issue)
        issue_drain(issue)
    finally:
        sink.stop()
    failed = Delivery.objects.get(issue=issue, status="failed")
    assert failed.last_error.startswith("could not build this reader's copy: AddressError")
    assert "IDNA" in failed.last_error
    assert Delivery.objects.filter(issue=issue, status="sent").count() == len(READERS) - 1


def test_header_encoding_rules():
    long_subject = "é" * 200
    line = mime.header_line("Subject", long_subject)
    assert all(len(part) <= 78 for part in line.split("\r\n"))
    assert all(len(word) <= 75 for word in mime.encoded_words(long_subject))
    # ASCII text that looks like an encoded word is encoded, so it is read as typed.
    assert mime.header_value("Subject", "about =?utf-8?q?x?= tokens") != "about =?utf-8?q?x?= tokens"
    assert mime.header_value("Subject", "Re: plain") == "Re: plain"
    assert mime.address_encode('A "quoted", name', "a@b.org") == '"A \\"quoted\\", name" <a@b.org>'
    assert mime.address_encode("Plain Name", "a@bücher.example") == "Plain Name <a@xn--bcher-kva.example>"
    assert mime.header_line("Subject", "a\r\nBcc: x@y.org") == "Subject: a  Bcc: x@y.org"  # no injection


@pytest.mark.parametrize(
    ("text", "eightbit", "encoding"),
    [
        ("plain ascii\nlines\n", True, "7bit"),
        ("ouvrières\n", True, "8bit"),
        ("ouvrières\n", False, "quoted-printable"),
        ("x" * 1200 + "\n", True, "quoted-printable"),
        ("nul \x00 byte\n", True, "base64"),
    ],
)
def test_transfer_encoding_is_chosen_as_a_mail_program_would(text, eightbit, encoding):
    data = mime.text_canonical(text)
    assert b"\n" not in data.replace(b"\r\n", b"")  # canonical CRLF
    chosen, body = mime.body_encode(data, eightbit=eightbit)
    assert chosen == encoding
    assert all(len(line) <= 998 for line in body.split(b"\r\n"))


def test_bare_line_ends_become_crlf():
    assert mime.text_canonical("a\nb\rc\r\nd") == b"a\r\nb\r\nc\r\nd"


@pytest.mark.django_db(transaction=True)
def test_unicode_corpus_through_the_outbox(settings, outbox):
    settings.EMAIL_TRANSPORT = "outbox"
    settings.SITE_URL = "https://list.example.org"
    issue, lists = corpus_make()
    issue_start_here(issue)
    issue_drain(issue)
    copies = [path.read_bytes() for path in sorted(outbox.glob("*.eml"))]
    sink = SmtpSink(keep_messages=True)  # only its tally, to check the copies the same way
    sink.tally.messages = copies
    received = _check_copies(sink, lists)
    assert len(copies) == Delivery.objects.filter(issue=issue, status="sent").count()
    failed = list(Delivery.objects.filter(issue=issue, status="failed").values_list("email", "last_error"))
    assert received | {email for email, _ in failed} >= {a for _, a in READERS if a != IDN[0]}

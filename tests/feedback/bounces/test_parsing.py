"""Reading returned mail: the formats real servers produce, complaints, auto-replies and garbage."""

from __future__ import annotations

import pytest

from issues.feedback.bounces import parsing
from issues.feedback.bounces.mime_split import entity_split
from tests.feedback.bounces.conftest import SAMPLES


def _read(name: str, **values: str) -> parsing.Report:
    return parsing.report_parse(parsing.message_from_bytes(_raw(name, **values)))


def _raw(name: str, **values: str) -> bytes:
    raw = (SAMPLES / f"{name}.eml").read_bytes().replace(b"\r\n", b"\n")
    defaults = {
        "{VERP}": "bounces+2n-abcdefghijklm@lists.example.org",
        "{RCPT}": "Dead.Reader@example.com",
        "{MSGID}": "dwv.7.12.abc@lists.example.org",
        "{BOUNCES}": "bounces@lists.example.org",
    }
    for mark, value in {**defaults, **values}.items():
        raw = raw.replace(mark.encode(), value.encode())
    return raw.replace(b"\n", b"\r\n")


@pytest.mark.parametrize(
    ("sample", "form", "kind", "status"),
    [
        ("postfix_hard", parsing.DSN, parsing.HARD, "5.1.1"),
        ("postfix_delayed", parsing.DSN, parsing.DELAYED, "4.2.2"),
        ("sendmail_hard", parsing.DSN, parsing.HARD, "5.1.1"),
        ("m365_hard", parsing.DSN, parsing.HARD, "5.1.10"),
        ("gmail_hard", parsing.DSN, parsing.HARD, "5.1.1"),
        ("exim_plain", parsing.HEURISTIC, parsing.HARD, "5.1.1"),
        ("arf_abuse", parsing.ARF, parsing.COMPLAINT, ""),
    ],
)
def test_each_servers_report_names_the_recipient_what_happened_and_the_mail_we_sent(sample, form, kind, status):
    report = _read(sample)
    assert report.form == form
    assert [(f.recipient, f.kind, f.status) for f in report.failures] == [("dead.reader@example.com", kind, status)]
    assert report.original_message_id == "<dwv.7.12.abc@lists.example.org>"


def test_the_servers_words_are_kept_as_the_diagnostic():
    failure = _read("gmail_hard").failures[0]
    assert failure.diagnostic.startswith("550-5.1.1 The email account that you tried to reach does not exist.")
    assert "gmail-smtp-in.l.google.com" in failure.remote_mta
    assert "Recipient address rejected: User unknown" in _read("postfix_hard").failures[0].diagnostic


def test_an_out_of_office_reply_is_not_a_bounce():
    assert _read("out_of_office").form == parsing.AUTO_REPLY


def test_garbage_is_unparsed_not_an_error():
    report = parsing.report_parse(parsing.message_from_bytes((SAMPLES / "garbage.eml").read_bytes()))
    assert report.form == parsing.UNPARSED and report.failures == []


@pytest.mark.parametrize(
    ("status", "action", "diagnostic", "expected"),
    [
        ("5.1.1", "failed", "", (parsing.HARD, "5.1.1")),
        ("5.2.2", "failed", "mailbox full", (parsing.SOFT, "5.2.2")),
        ("4.4.7", "failed", "", (parsing.SOFT, "4.4.7")),
        ("", "failed", "smtp; 550 no such user", (parsing.HARD, "5.0.0")),
        ("", "failed", "", (parsing.HARD, "5.0.0")),
        ("4.0.0", "delayed", "", (parsing.DELAYED, "4.0.0")),
        ("garbage", "", "", (parsing.SOFT, "4.0.0")),
    ],
)
def test_the_status_code_decides_hard_or_soft(status, action, diagnostic, expected):
    assert parsing.status_kind(status=status, action=action, diagnostic=diagnostic) == expected


def test_a_dsn_with_a_hostile_recipient_field_records_no_header_injection():
    report = _read("postfix_hard", **{"{RCPT}": "x@example.com\r\nBcc: victim@example.org"})
    assert all("\n" not in f.recipient and "\r" not in f.recipient for f in report.failures)


@pytest.mark.parametrize(
    "raw",
    [
        b"Content-Type: multipart/report; report-type*=utf-8''delivery-status; boundary=x\r\n\r\n--x\r\n--x--\r\n",
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n"
        b"--x\r\nContent-Type: message/delivery-status\r\n\r\nAction: failed\r\n\r\n--x--\r\n",
        b"Content-Type: multipart/report; report-type=feedback-report\r\n\r\nno parts at all",
        "Subject: =?utf-8?q?=C3=A9?= \xe9\xff\r\nFrom: <>\r\n\r\n\x00".encode("latin-1"),
        b"",
        b"\r\n\r\n" * 1000,
        b"Content-Type: text/plain\r\nX-Failed-Recipients: " + b"a" * 100_000 + b"\r\n\r\nbody",
    ],
)
def test_hostile_or_malformed_mail_never_raises(raw):
    report = parsing.report_parse(parsing.message_from_bytes(raw))
    assert report.form in (parsing.DSN, parsing.ARF, parsing.HEURISTIC, parsing.UNPARSED, parsing.AUTO_REPLY)
    assert all("@" in f.recipient for f in report.failures)


@pytest.mark.parametrize("newline", [b"\r\n", b"\n"])
@pytest.mark.parametrize("sample", sorted(path.stem for path in SAMPLES.glob("*.eml")))
def test_the_quick_reading_of_a_report_says_exactly_what_the_full_parse_says(sample, newline):
    raw = _raw(sample).replace(b"\r\n", newline)
    full = parsing.message_from_bytes(raw)
    message, report = parsing.mail_read(raw)
    assert report == parsing.report_parse(full)
    assert message.items() == full.items()
    quick = entity_split(raw.decode("ascii", "surrogateescape"))
    standard = sample.startswith(("postfix", "sendmail", "m365", "gmail", "arf"))
    assert (quick is not None and quick.get_content_type() == "multipart/report") == standard


def test_a_report_the_quick_reading_cannot_vouch_for_gets_the_full_parse_and_the_same_reading():
    raw = _raw("postfix_hard")
    unclosed = raw[: raw.rindex(b"--")]
    not_a_header = raw.replace(
        b"Content-Type: message/delivery-status", b"Content-Type: message/delivery-status\r\nno colon here"
    )
    for odd in (unclosed, not_a_header):
        assert entity_split(odd.decode("ascii", "surrogateescape")) is None
        assert parsing.mail_read(odd)[1] == parsing.report_parse(parsing.message_from_bytes(odd))
    assert parsing.mail_read(unclosed)[1].failures[0].status == "5.1.1"

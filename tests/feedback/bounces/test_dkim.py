"""DKIM: every mail on the SMTP path signed, verified by dkimpy against the record dkim_record prints."""

from __future__ import annotations

import io
import re
import subprocess

import dkim
import pytest
from django.core.management import CommandError, call_command

from issues.checks import dkim_key_check
from issues.delivery.transports.dkim import DkimSigner
from tests.feedback.bounces.conftest import issue_sent


def _key(kind: str) -> str:
    command = ["openssl", "genpkey", "-algorithm", "ED25519"]
    if kind == "rsa":
        command = ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def rsa_key():
    return _key("rsa")


def _record(settings) -> str:
    out = io.StringIO()
    call_command("dkim_record", stdout=out)
    line = out.getvalue().strip()
    assert line.startswith(f"{settings.DKIM_SELECTOR}._domainkey.{settings.DKIM_DOMAIN}. IN TXT (")
    return "".join(re.findall(r'"([^"]*)"', line))


def _dns_stub(record: str, settings):
    asked = []

    def dnsfunc(name, timeout=5):
        asked.append(name)
        expected = f"{settings.DKIM_SELECTOR}._domainkey.{settings.DKIM_DOMAIN}.".encode()
        return record.encode() if name == expected else None

    return dnsfunc, asked


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_every_copy_is_signed_and_verifies_against_the_printed_record(smtp_sink, settings, rsa_key, kind):
    settings.DKIM_DOMAIN = "lists.example.org"
    settings.DKIM_SELECTOR = "dwv2026"
    settings.DKIM_PRIVATE_KEY = rsa_key if kind == "rsa" else _key("ed25519")
    # A non-ASCII sender name (RFC 2047) is signed as it is sent.
    issue_sent(readers=3, from_name="Rédaction ✊")
    record = _record(settings)
    assert f"k={kind}" in record
    dnsfunc, asked = _dns_stub(record, settings)
    assert len(smtp_sink.tally.messages) == 3
    for raw in smtp_sink.tally.messages:
        assert raw.startswith(b"DKIM-Signature: v=1; a=" + (b"rsa-sha256" if kind == "rsa" else b"ed25519-sha256"))
        assert dkim.verify(raw, dnsfunc=dnsfunc)
        signed = re.search(rb"h=([^;]+);", raw).group(1).decode().split(":")
        for header in ("from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post"):
            assert header in signed
    assert asked


@pytest.mark.django_db
def test_a_changed_header_or_body_fails_verification(smtp_sink, settings, rsa_key):
    settings.DKIM_DOMAIN, settings.DKIM_SELECTOR, settings.DKIM_PRIVATE_KEY = "lists.example.org", "s1", rsa_key
    issue_sent(readers=1)
    dnsfunc, _ = _dns_stub(_record(settings), settings)
    raw = smtp_sink.tally.messages[0]
    assert dkim.verify(raw, dnsfunc=dnsfunc)
    unsubscribe = re.search(rb"List-Unsubscribe: <([^>]+)>", raw).group(1)
    assert not dkim.verify(raw.replace(unsubscribe, b"https://evil.example/u/x/"), dnsfunc=dnsfunc)
    assert not dkim.verify(raw[:-40] + b"A" * 10 + raw[-30:], dnsfunc=dnsfunc)


@pytest.mark.django_db
def test_without_dkim_settings_nothing_is_signed_and_dkim_record_says_so(smtp_sink, settings):
    settings.DKIM_DOMAIN = settings.DKIM_SELECTOR = settings.DKIM_PRIVATE_KEY = ""
    issue_sent(readers=1)
    assert b"DKIM-Signature" not in smtp_sink.tally.messages[0]
    with pytest.raises(CommandError, match="DKIM signing is off"):
        call_command("dkim_record")


def test_a_bad_key_is_refused_with_a_clear_error(settings):
    settings.DKIM_DOMAIN, settings.DKIM_SELECTOR = "lists.example.org", "s1"
    settings.DKIM_PRIVATE_KEY = "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n"
    with pytest.raises(CommandError, match="DKIM_PRIVATE_KEY could not be read"):
        call_command("dkim_record")
    assert [error.id for error in dkim_key_check(None)] == ["dwvlist.E016"]
    with pytest.raises(ValueError, match="at least 1024 bits"):
        DkimSigner(
            domain="x.example",
            selector="s",
            private_key_pem=subprocess.run(
                ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:512"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout,
        )

"""DKIM: every mail on the SMTP path signed, verified by dkimpy against the record dkim_record prints."""

from __future__ import annotations

import dataclasses
import re
import subprocess

import dkim
import pytest
from django.core.management import CommandError, call_command

from dwvlist.dkim import DkimSigner, dkim_signer
from issues.checks import dkim_key_check
from issues.delivery.mime import MessageTemplate, address_header, header_line
from issues.delivery.tracking import html_marked
from issues.delivery.transports.base import Envelope
from issues.delivery.transports.dkim import DkimBatch
from issues.delivery.transports.smtp import copy_build
from issues.models import Issue
from issues.rendering import issue_render
from subscriptions.models import MailingList, Subscriber
from tests.fakes.dkim_dns import dkim_dns, dkim_key, dkim_record
from tests.feedback.bounces.conftest import issue_sent
from tests.issues.ledger_helpers import (
    issue_drain,
    issue_make,
    issue_start_here,
    list_make,
    readers_make,
    recipients_unsaved,
)


@pytest.fixture(scope="module")
def rsa_key():
    return dkim_key("rsa")


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_every_copy_is_signed_and_verifies_against_the_printed_record(smtp_sink, settings, rsa_key, kind):
    settings.DKIM_DOMAIN = "lists.example.org"
    settings.DKIM_SELECTOR = "dwv2026"
    settings.DKIM_PRIVATE_KEY = rsa_key if kind == "rsa" else dkim_key("ed25519")
    # A non-ASCII sender name (RFC 2047) is signed as it is sent.
    issue_sent(readers=3, from_name="Rédaction ✊")
    record = dkim_record(settings)
    assert f"k={kind}" in record
    dnsfunc, asked = dkim_dns(record, settings)
    assert len(smtp_sink.tally.messages) == 3
    for raw in smtp_sink.tally.messages:
        assert raw.startswith(b"DKIM-Signature: v=1; a=" + (b"rsa-sha256" if kind == "rsa" else b"ed25519-sha256"))
        assert dkim.verify(raw, dnsfunc=dnsfunc)
        signed = re.search(rb"h=([^;]+);", raw).group(1).decode().split(":")
        for header in ("from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post"):
            assert header in signed
    assert asked


def _header(raw: bytes, name: bytes) -> bytes:
    return re.search(rb"\r\n" + name + rb": ((?:[^\r]|\r\n[ \t])*)", raw).group(1)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_different_readers_copies_of_one_batch_each_verify(smtp_sink, settings, rsa_key, kind):
    settings.DKIM_DOMAIN, settings.DKIM_SELECTOR = "lists.example.org", "dwv2026"
    settings.DKIM_PRIVATE_KEY = rsa_key if kind == "rsa" else dkim_key("ed25519")
    news = list_make("news")
    ids = readers_make(news, 4)
    # Names that fold and need encoding, so To differs in shape as well as in address.
    Subscriber.objects.filter(pk=ids[0]).update(name="Zoë  Müller-Lüdenscheidt, Local 600 Retirees' Committee")
    Subscriber.objects.filter(pk=ids[1]).update(name="Al\tJones")
    issue = issue_make(news, title="A  subject  with  doubled  spaces, long enough that the Subject line folds twice")
    issue_start_here(issue)
    issue_drain(issue)
    dnsfunc, _ = dkim_dns(dkim_record(settings), settings)
    copies = smtp_sink.tally.messages
    assert len(copies) == 4
    # Each copy is the reader's own (address, unsubscribe link, links in the body) ...
    assert len({_header(raw, b"To") for raw in copies}) == 4
    assert len({_header(raw, b"List-Unsubscribe") for raw in copies}) == 4
    assert len({raw.partition(b"\r\n\r\n")[2] for raw in copies}) == 4
    # ... and each verifies, the copies hashed past the batch's shared beginning included.
    for raw in copies:
        assert dkim.verify(raw, dnsfunc=dnsfunc), raw[:2000]


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_batch_signing_matches_signing_the_whole_message(settings, rsa_key, kind):
    """A batch's copies, tracked and not (so some bodies leave the shared beginning early), sign as whole ones do."""
    settings.DKIM_DOMAIN, settings.DKIM_SELECTOR = "lists.example.org", "s1"
    settings.DKIM_PRIVATE_KEY = rsa_key if kind == "rsa" else dkim_key("ed25519")
    settings.SITE_URL = "https://list.example.org"
    news = MailingList(pk=3, slug="news", name="News", from_email="news@lists.example.org", archive_enabled=True)
    issue = Issue(pk=7, title="When the plant closes", byline="The editors", body="A paragraph.\n\n" * 200)
    rendered = issue_render(issue, mailing_list=news)
    envelope = Envelope(7, rendered.subject, rendered.html, rendered.text, news.from_email, "Rédaction ✊", "")
    template = MessageTemplate(
        from_line=address_header("From", envelope.from_name, envelope.from_email),
        subject_line=header_line("Subject", envelope.subject),
        reply_to_line="",
        extra_headers={},
    )
    readers = [dataclasses.replace(r, tracking=n % 3 == 2) for n, r in enumerate(recipients_unsaved(7))]
    signer = dkim_signer()
    dnsfunc, _ = dkim_dns(dkim_record(settings), settings)
    batch = DkimBatch(signer)
    for reader in readers:
        raw = copy_build(template=template, envelope=envelope, recipient=reader, marked=html_marked(envelope.html),
                         eightbit=True, signing=batch)  # fmt: skip
        assert dkim.verify(raw, dnsfunc=dnsfunc)
        # Both algorithms sign deterministically: the same bytes as the whole message signed at once.
        signed_at = int(re.search(rb"; t=(\d+);", raw).group(1))
        assert signer.sign(raw.partition(b"\r\n")[2], now=signed_at) == raw
    assert len(batch._prefix) > len(envelope.text) // 2


@pytest.mark.django_db
def test_a_changed_header_or_body_fails_verification(smtp_sink, settings, rsa_key):
    settings.DKIM_DOMAIN, settings.DKIM_SELECTOR, settings.DKIM_PRIVATE_KEY = "lists.example.org", "s1", rsa_key
    issue_sent(readers=1)
    dnsfunc, _ = dkim_dns(dkim_record(settings), settings)
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

"""DKIM on the app's own mail: what SmtpBackend hands to a real SMTP server verifies with dkimpy."""

from __future__ import annotations

import email
import email.policy
import re

import dkim
import pytest
from django.core.mail import EmailMultiAlternatives
from django.utils import timezone

from dwvlist.dkim import dkim_signer
from subscriptions import tasks
from subscriptions.models import MailingList, Subscriber, Subscription
from subscriptions.services import welcome_mail_send
from tests.fakes.dkim_dns import dkim_dns, dkim_key, dkim_record
from tests.fakes.sinks import SmtpSink

REQUIRED = ("from", "to", "subject", "date", "message-id")


@pytest.fixture(scope="module")
def rsa_key():
    return dkim_key("rsa")


@pytest.fixture
def smtp_sink(settings):
    sink = SmtpSink(keep_messages=True).start()
    settings.EMAIL_TRANSPORT = "smtp"
    settings.EMAIL_BACKEND = "dwvlist.mail.SmtpBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", sink.port
    yield sink
    sink.stop()


@pytest.fixture
def dkim_dns_stub(settings, rsa_key):
    """Turn DKIM on; return the DNS answer for dkimpy."""
    settings.DKIM_DOMAIN, settings.DKIM_SELECTOR, settings.DKIM_PRIVATE_KEY = "lists.example.org", "dwv2026", rsa_key
    return dkim_dns(dkim_record(settings), settings)[0]


def _signed_headers(raw: bytes) -> list[str]:
    assert raw.startswith(b"DKIM-Signature: v=1; a=")
    return re.search(rb"\bh=([^;]+);", raw).group(1).decode().split(":")


def _subscribe(client, django_capture_on_commit_callbacks, **form) -> Subscriber:
    with django_capture_on_commit_callbacks():
        response = client.post("/subscribe/", {"email": "reader@example.org", "name": "", **form})
    assert response.status_code == 302
    return Subscriber.objects.get(email=form.get("email", "reader@example.org"))


@pytest.mark.django_db
def test_a_confirmation_mail_from_the_public_form_arrives_signed(
    client, smtp_sink, dkim_dns_stub, django_capture_on_commit_callbacks
):
    MailingList.objects.create(name="News", slug="news", from_name="The News Desk", from_email="news@example.org")
    reader = _subscribe(client, django_capture_on_commit_callbacks, lists=["news"])
    assert tasks.confirmation_mail(reader.pk) is True
    [raw] = smtp_sink.tally.messages
    assert dkim.verify(raw, dnsfunc=dkim_dns_stub)
    assert set(REQUIRED) <= set(_signed_headers(raw))
    assert b"Confirm your subscription to News" in raw
    # What arrived is what was signed: changing the body breaks it.
    assert not dkim.verify(raw.replace(b"/confirm/", b"/confirn/"), dnsfunc=dkim_dns_stub)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_non_ascii_names_and_subjects_verify(
    client, smtp_sink, dkim_dns_stub, settings, kind, django_capture_on_commit_callbacks
):
    if kind == "ed25519":
        settings.DKIM_PRIVATE_KEY = dkim_key("ed25519")
        dkim_dns_stub = dkim_dns(dkim_record(settings), settings)[0]
    news = MailingList.objects.create(
        name="Détroit Voice — « la grève »", slug="news", from_name="Rédaction ✊", from_email="news@example.org"
    )
    reader = _subscribe(client, django_capture_on_commit_callbacks, name="Zoë", lists=["news"])
    assert tasks.confirmation_mail(reader.pk) is True
    Subscription.objects.filter(subscriber=reader).update(status="active", confirmed_at=timezone.now())
    assert welcome_mail_send(subscriber_id=reader.pk, list_id=news.pk)
    # Staff mail through Django's own encoder: its folding, its line ends, a line a dot starts.
    message = EmailMultiAlternatives(
        subject="Réunion du comité — ordre du jour, long enough that Python folds the encoded subject line",
        body="Bonjour Zoë,\n.\n.une ligne qui commence par un point\nFrom here on, nothing is quoted.\n",
        from_email="Secrétariat « Détroit » <staff@example.org>",
        to=["Zoë Müller <zoe@example.org>"],
    )
    message.attach_alternative("<p>Bonjour Zoë</p>", "text/html")
    assert message.send() == 1

    confirm, welcome, staff = smtp_sink.tally.messages
    for raw in (confirm, welcome, staff):
        assert dkim.verify(raw, dnsfunc=dkim_dns_stub), raw[:1500]
        assert raw.startswith(b"DKIM-Signature: v=1; a=" + (b"rsa-sha256" if kind == "rsa" else b"ed25519-sha256"))
        assert set(REQUIRED) <= set(_signed_headers(raw))
    assert {"list-unsubscribe", "list-unsubscribe-post"} <= set(_signed_headers(welcome))
    parsed = email.message_from_bytes(staff, policy=email.policy.default)
    assert parsed["From"].addresses[0].display_name == "Secrétariat « Détroit »"
    # Python's encoder folds before the first encoded word ("Subject: \r\n =?utf-8?q?R=C3=A9union..."): signed as sent.
    assert str(parsed["Subject"]).strip().startswith("Réunion du comité")
    assert email.message_from_bytes(confirm, policy=email.policy.default)["Subject"] == (
        "Confirm your subscription to Détroit Voice — « la grève »"
    )


@pytest.mark.django_db
def test_without_dkim_settings_nothing_is_signed(client, smtp_sink, settings, django_capture_on_commit_callbacks):
    settings.DKIM_DOMAIN = settings.DKIM_SELECTOR = settings.DKIM_PRIVATE_KEY = ""
    assert dkim_signer() is None
    MailingList.objects.create(name="News", slug="news", from_name="The News Desk", from_email="news@example.org")
    reader = _subscribe(client, django_capture_on_commit_callbacks, lists=["news"])
    assert tasks.confirmation_mail(reader.pk) is True
    EmailMultiAlternatives(subject="Hello", body="Hi\n", from_email="staff@example.org", to=["a@example.org"]).send()
    assert len(smtp_sink.tally.messages) == 2
    for raw in smtp_sink.tally.messages:
        assert b"DKIM-Signature" not in raw


def test_a_message_without_from_is_not_signed(settings, rsa_key):
    settings.DKIM_DOMAIN, settings.DKIM_SELECTOR, settings.DKIM_PRIVATE_KEY = "lists.example.org", "s1", rsa_key
    with pytest.raises(ValueError, match="without a From field"):
        dkim_signer().sign(b"To: a@example.org\r\nSubject: x\r\n\r\nbody\r\n")

"""The system's own mails (confirmation, welcome) for real names: the outbox and a real SMTP server."""

from __future__ import annotations

import smtplib

import pytest
from django.utils import timezone

from subscriptions.address_change import address_change_mail_send
from subscriptions.confirmation import confirmation_mail_send
from subscriptions.models import Subscriber, Subscription
from subscriptions.services import welcome_mail_send
from tests.fakes.sinks import SmtpSink
from tests.issues.ledger_helpers import list_make
from tests.issues.unicode_corpus import LISTS, READERS, display, headers_strict, parse_strict, wire_checks


def _reader(address: str, name: str, mailing_list, *, status: str) -> Subscriber:
    subscriber = Subscriber.objects.create(email=address, name=name)
    Subscription.objects.create(
        subscriber=subscriber,
        mailing_list=mailing_list,
        status=status,
        consent_source="form",
        confirmed_at=timezone.now() if status == "active" else None,
    )
    return subscriber


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "address"), READERS)
def test_confirmation_and_welcome_are_encoded_for_any_name(outbox, settings, name, address):
    slug, list_name, from_name = LISTS[2]
    mailing_list = list_make(slug, name=list_name, from_name=from_name)
    pending = _reader(address, name, mailing_list, status="pending")
    assert confirmation_mail_send(subscriber_id=pending.pk)
    Subscription.objects.filter(subscriber=pending).update(status="active", confirmed_at=timezone.now())
    assert welcome_mail_send(subscriber_id=pending.pk, list_id=mailing_list.pk)

    confirm, welcome = [path.read_bytes() for path in sorted(outbox.glob("*.eml"))]
    for raw, subject in ((confirm, f"Confirm your subscription to {list_name}"), (welcome, f"Welcome to {list_name}")):
        wire_checks(raw)
        headers = headers_strict(raw)
        assert headers["Subject"] == subject
        assert display(headers["From"]) == (from_name, f"{slug}@lists.example.org")
        to_name, to_address = display(headers["To"])
        # A name typed on the public form is never repeated, not even in To (see the security rules).
        assert to_name == ""
        assert to_address == (address if "münchen" not in address else "juergen@xn--mnchen-3ya.example")
        text = parse_strict(raw).get_body(("plain",)).get_content()
        assert not name or name not in text
    assert str(headers_strict(welcome)["List-Id"]).startswith(f"{list_name} <{slug}.")


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "address"), READERS)
def test_the_change_of_address_mail_names_the_reader_in_any_script(outbox, settings, name, address):
    # The reader chose this name on their own preferences page: it may be repeated to them.
    slug, list_name, from_name = LISTS[2]
    mailing_list = list_make(slug, name=list_name, from_name=from_name)
    reader = _reader("old@example.org", name, mailing_list, status="active")
    assert address_change_mail_send(subscriber_id=reader.pk, new_email=address)
    [raw] = [path.read_bytes() for path in outbox.glob("*.eml")]
    wire_checks(raw)
    to_name, to_address = display(headers_strict(raw)["To"])
    assert to_name == name
    assert to_address == (address if "münchen" not in address else "juergen@xn--mnchen-3ya.example")


@pytest.mark.django_db
@pytest.mark.parametrize("smtputf8", [True, False])
def test_system_mail_to_a_utf8_address_uses_smtputf8_or_fails_clearly(settings, smtputf8):
    sink = SmtpSink(keep_messages=True, smtputf8=smtputf8).start()
    settings.EMAIL_BACKEND = "dwvlist.mail.SmtpBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", sink.port
    try:
        mailing_list = list_make("news", name="Détroit Voice")
        pending = _reader("josé@example.org", "José", mailing_list, status="pending")
        if smtputf8:
            assert confirmation_mail_send(subscriber_id=pending.pk)
        else:
            with pytest.raises(smtplib.SMTPNotSupportedError):
                confirmation_mail_send(subscriber_id=pending.pk)
    finally:
        sink.stop()
    if smtputf8:
        [raw] = sink.tally.messages
        assert display(headers_strict(raw)["To"]) == ("", "josé@example.org")
        assert list(sink.tally.recipients) == ["josé@example.org"]
    else:
        assert not sink.tally.messages


@pytest.mark.django_db
def test_the_console_backend_prints_a_prepared_mail(settings, capsys):
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    mailing_list = list_make("news", name="Détroit Voice")
    reader = _reader("zoe@example.org", "Zoë", mailing_list, status="active")
    assert address_change_mail_send(subscriber_id=reader.pk, new_email="zoe.new@example.org")
    assert "To: =?utf-8?b?Wm/Dqw==?= <zoe.new@example.org>" in capsys.readouterr().out

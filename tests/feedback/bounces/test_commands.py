"""Mail to a list's command addresses that lands where bounces do: answered as through a provider's inbound webhook."""

from __future__ import annotations

import email
import email.policy
import re

import pytest
from django.utils import timezone

from issues.feedback.bounces.intake import bounce_receive, bounces_receive
from issues.models import UnparsedBounce
from subscriptions.models import MailingList, Subscriber, Subscription

pytestmark = pytest.mark.django_db

TOKEN = "t0ken-for-the-bounce-hook-0123456789"


@pytest.fixture
def news():
    return MailingList.objects.create(
        name="News", slug="news", from_name="DWV", from_email="list@dwv.example", reply_to="editors@dwv.example"
    )


@pytest.fixture
def eager():
    from dwvlist.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


def _mail(to: str, *, sender: str = "newreader@example.org", extra: str = "") -> bytes:
    return (
        f"Return-Path: <{sender}>\r\nFrom: A Reader <{sender}>\r\nTo: {to}\r\nSubject: Hello\r\n{extra}"
        f"Message-ID: <{to.split('@')[0]}.{sender}>\r\nDate: Sun, 29 Nov 2026 18:00:00 +0000\r\n\r\nPlease.\r\n"
    ).encode()


def _answers(outbox) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in sorted(outbox.glob("*.eml"))]


def test_help_through_the_pipe_is_answered_and_kept_nowhere(news, outbox):
    result = bounce_receive(raw=_mail("list+help@dwv.example"), source="pipe")
    assert (result.form, result.recorded) == ("command", 0)
    [answer] = _answers(outbox)
    assert answer["To"] == "newreader@example.org" and answer["Auto-Submitted"] == "auto-replied"
    assert "list+subscribe@dwv.example" in answer.get_body(preferencelist=("plain",)).get_content()
    assert not UnparsedBounce.objects.exists()


def test_subscribe_in_the_mailbox_starts_a_double_opt_in_among_bounces(
    news, outbox, eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        results = bounces_receive(
            raws=[_mail("List+Subscribe@dwv.example"), _mail("list+join@dwv.example")], source="imap"
        )
    assert [r.form for r in results] == ["command", "command"]
    subscription = Subscription.objects.get(subscriber__email="newreader@example.org")
    assert (subscription.status, subscription.consent_source) == ("pending", "email")
    [confirmation] = _answers(outbox)  # the second request within the interval sends no second mail
    assert "confirm" in confirmation["Subject"].lower()


def test_leave_over_http_answers_with_the_link_and_unsubscribes_nobody(client, news, outbox, settings):
    settings.BOUNCE_HTTP_TOKEN = TOKEN
    reader = Subscriber.objects.create(email="alice@example.org")
    Subscription.objects.create(
        subscriber=reader, mailing_list=news, status="active", consent_source="form", confirmed_at=timezone.now()
    )
    response = client.post(
        "/bounces/receive/",
        data=_mail("list+leave@dwv.example", sender="alice@example.org"),
        content_type="message/rfc822",
        HTTP_AUTHORIZATION=f"Bearer {TOKEN}",
    )
    assert response.json()["form"] == "command"
    assert Subscription.objects.get(subscriber=reader).status == "active"  # a From header proves nothing
    [answer] = _answers(outbox)
    assert answer["To"] == "alice@example.org"
    assert re.search(r"https?://\S+/u/\S+/", answer.get_body(preferencelist=("plain",)).get_content())


@pytest.mark.parametrize(
    "extra",
    ["Precedence: bulk\r\n", "List-Id: <other.lists.example.org>\r\n", "Return-Path: <>\r\n"],
)
def test_program_and_list_mail_to_a_command_address_gets_no_answer(news, outbox, extra):
    raw = _mail("list+help@dwv.example", extra=extra)
    if extra.startswith("Return-Path"):
        raw = raw.replace(b"Return-Path: <newreader@example.org>\r\n", b"")
    assert bounce_receive(raw=raw, source="imap").form == "command"
    assert _answers(outbox) == []
    assert not UnparsedBounce.objects.exists()

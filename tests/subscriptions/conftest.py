"""A fixed cast for the reader pages: a public list, a private one, readers in each state."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest
from django.utils import timezone

from subscriptions.models import MailingList, Subscriber, Subscription


@pytest.fixture
def news(db):
    return MailingList.objects.create(
        name="News", slug="news", from_name="The News Desk", from_email="news@example.org", reply_to="desk@example.org"
    )


@pytest.fixture
def notes(db):
    return MailingList.objects.create(
        name="Notes",
        slug="notes",
        from_name="Notes",
        from_email="notes@example.org",
        double_opt_in=False,
        send_welcome=True,
    )


@pytest.fixture
def private(db):
    return MailingList.objects.create(
        name="Cadre", slug="cadre", from_name="Cadre", from_email="cadre@example.org", is_public=False
    )


@pytest.fixture
def active_reader(news):
    reader = Subscriber.objects.create(email="active@example.org", name="Ada")
    Subscription.objects.create(
        subscriber=reader, mailing_list=news, status="active", consent_source="form", confirmed_at=timezone.now()
    )
    return reader


def outbox_messages(path: Path) -> list[email.message.EmailMessage]:
    """Return the messages in the outbox directory, oldest first."""
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in sorted(path.glob("*.eml"))]


def text_of(message: email.message.EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def html_of(message: email.message.EmailMessage) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def link_in(text: str, prefix: str) -> str:
    """Return the first URL in text that starts with prefix."""
    start = text.index(prefix)
    end = start
    while end < len(text) and not text[end].isspace() and text[end] not in "\"'<>":
        end += 1
    return text[start:end]

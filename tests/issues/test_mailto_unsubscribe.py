"""Unsubscribing by mail: each copy's own List-Unsubscribe address, and the bare one that unsubscribes nobody."""

from __future__ import annotations

import json
import secrets
from urllib.parse import quote

import pytest
from django.utils import timezone

from issues.models import Comment, Issue
from subscriptions.links import unsubscribe_mailto_for
from subscriptions.mailto import preferences_link_mail_send
from subscriptions.models import MailingList, Subscriber, Subscription
from subscriptions.tokens import mailto_token_make
from tests.issues.payloads import WebhookPost, anymail_settings, inbound_post
from tests.subscriptions.conftest import outbox_messages, text_of

pytestmark = pytest.mark.django_db

PROVIDERS = ["postmark", "mailgun", "brevo", "sendgrid"]


@pytest.fixture(autouse=True)
def webhook_settings(settings):
    settings.ANYMAIL = anymail_settings()


def _reader(email: str, mailing_list: MailingList) -> Subscriber:
    reader = Subscriber.objects.create(email=email)
    Subscription.objects.create(
        subscriber=reader,
        mailing_list=mailing_list,
        status="active",
        consent_source="form",
        confirmed_at=timezone.now(),
    )
    return reader


@pytest.fixture
def cast():
    news = MailingList.objects.create(name="News", slug="news", from_name="DWV", from_email="list@dwv.example")
    other = MailingList.objects.create(name="Other", slug="other", from_name="DWV", from_email="other@dwv.example")
    alice, bob = _reader("alice@example.org", news), _reader("bob@example.org", news)
    Subscription.objects.create(
        subscriber=alice, mailing_list=other, status="active", consent_source="form", confirmed_at=timezone.now()
    )
    issue = Issue.objects.create(title="On the strike", body="Body")
    issue.lists.add(news)
    return {"news": news, "other": other, "alice": alice, "bob": bob, "issue": issue}


def mail_to(client, provider: str, *, to: str, sender: str, headers: str = ""):
    """Post, as the provider's inbound webhook, a mail from `sender` to `to` (list@dwv.example in the payload)."""
    request = inbound_post(provider, RECIPIENT=sender, IN_REPLY_TO="")
    body = request.body.replace(b"list@dwv.example", to.encode())
    if provider == "mailgun":  # the form body is URL-encoded
        body = request.body.replace(b"list%40dwv.example", quote(to, safe="").encode())
    if provider == "sendgrid":  # the multipart body has the raw headers too
        body = body.replace(b"list%40dwv.example", quote(to, safe="").encode())
    if headers:  # Postmark's JSON lists the mail's headers
        name, _, value = headers.partition(": ")
        extra = json.dumps({"Name": name, "Value": value}).encode()
        body = body.replace(
            b'{"Name": "X-Spam-Status", "Value": "No"}', b'{"Name": "X-Spam-Status", "Value": "No"}, ' + extra
        )
        assert extra in body
    response = WebhookPost(request.path, body, request.content_type).send(client)
    assert response.status_code == 200
    return response


def _status(reader: Subscriber, mailing_list: MailingList) -> str:
    return Subscription.objects.get(subscriber=reader, mailing_list=mailing_list).status


@pytest.mark.parametrize("provider", PROVIDERS)
def test_mail_to_a_readers_own_address_unsubscribes_exactly_them_whatever_its_from(client, cast, provider):
    address = unsubscribe_mailto_for(
        mailing_list=cast["news"], subscriber_id=cast["alice"].pk, issue_id=cast["issue"].pk
    )
    assert address.startswith("list+unsubscribe-") and address.endswith("@dwv.example") and len(address) < 80

    # A mail client's unsubscribe button may send from any identity the reader has.
    mail_to(client, provider, to=address, sender="alice.at.work@example.net")

    subscription = Subscription.objects.get(subscriber=cast["alice"], mailing_list=cast["news"])
    assert (subscription.status, subscription.unsubscribe_source) == ("unsubscribed", "mailto")
    assert subscription.unsubscribe_issue == cast["issue"]
    assert _status(cast["alice"], cast["other"]) == "active"  # that list only
    assert _status(cast["bob"], cast["news"]) == "active"
    assert not Comment.objects.exists()


def test_the_address_survives_a_mail_system_that_upper_cases_it(client, cast):
    address = unsubscribe_mailto_for(mailing_list=cast["news"], subscriber_id=cast["bob"].pk)
    mail_to(client, "postmark", to=address.upper(), sender="bob@example.org")
    assert _status(cast["bob"], cast["news"]) == "unsubscribed"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_forged_from_to_the_bare_address_changes_nothing(
    client, cast, provider, outbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        mail_to(client, provider, to="list+unsubscribe@dwv.example", sender="alice@example.org")

    assert _status(cast["alice"], cast["news"]) == "active"
    assert _status(cast["alice"], cast["other"]) == "active"
    assert not Comment.objects.exists()
    # At most, the real Alice gets a link to her own preferences, in her own inbox.
    assert len(queued) == 1
    assert preferences_link_mail_send(subscriber_id=cast["alice"].pk, list_id=cast["news"].pk)
    [answer] = outbox_messages(outbox)
    assert answer["To"] == "alice@example.org"
    assert answer["From"] == "DWV <list@dwv.example>"
    assert answer["Auto-Submitted"] == "auto-replied"
    assert "Nothing has been changed" in text_of(answer)
    assert "http://127.0.0.1:8000/p/" in text_of(answer)


def test_the_bare_address_answers_a_reader_once_a_day_and_strangers_never(
    client, cast, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        for _ in range(3):
            mail_to(client, "postmark", to="list+unsubscribe@dwv.example", sender="alice@example.org")
        mail_to(client, "postmark", to="list+unsubscribe@dwv.example", sender="stranger@example.net")
    assert len(queued) == 1


@pytest.mark.parametrize("header", ["Auto-Submitted: auto-replied", "Precedence: bulk", "X-Autoreply: yes"])
def test_an_auto_reply_to_the_bare_address_gets_no_answer(client, cast, header, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        mail_to(client, "postmark", to="list+unsubscribe@dwv.example", sender="alice@example.org", headers=header)
    assert queued == []
    assert _status(cast["alice"], cast["news"]) == "active"


@pytest.mark.parametrize(
    "token",
    [
        # Alice's token with Bob's id put in: the MAC no longer matches.
        lambda c: "-".join(
            [_b36(c["bob"].pk), *mailto_token_make(subscriber_id=c["alice"].pk, list_id=c["news"].pk).split("-")[1:]]
        ),
        # Made with a key that is not ours.
        lambda c: _token_under(secrets.token_urlsafe(64), c["bob"].pk, c["news"].pk),
        # A valid token for the other list, sent to this list's address.
        lambda c: mailto_token_make(subscriber_id=c["bob"].pk, list_id=c["other"].pk),
        lambda c: "",
        lambda c: "x" * 200,
        lambda c: "zz-zz--" + "a" * 20,
        lambda c: "ünïcode-1-1-" + "a" * 20,
    ],
)
def test_a_forged_or_mismatched_token_unsubscribes_nobody_and_gets_no_answer(
    client, cast, token, settings, django_capture_on_commit_callbacks
):
    value = token(cast)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        mail_to(client, "postmark", to=f"list+unsubscribe-{value}@dwv.example", sender="bob@example.org")
    assert queued == []
    assert Subscription.objects.exclude(status="active").count() == 0


def _b36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out


def _token_under(key: str, subscriber_id: int, list_id: int) -> str:
    from django.test import override_settings

    with override_settings(SECRET_KEY=key):
        return mailto_token_make(subscriber_id=subscriber_id, list_id=list_id)


def test_a_token_made_before_a_key_rotation_still_works(client, cast, settings):
    old = secrets.token_urlsafe(64)
    address = _token_under(old, cast["bob"].pk, cast["news"].pk)
    settings.SECRET_KEY_FALLBACKS = [old]
    mail_to(client, "postmark", to=f"list+unsubscribe-{address}@dwv.example", sender="someone@example.net")
    assert _status(cast["bob"], cast["news"]) == "unsubscribed"

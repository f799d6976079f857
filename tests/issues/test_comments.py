"""Readers' replies: the inbound webhooks, and the editors' inbox at /editor/comments/."""

from __future__ import annotations

import email
import json

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from issues.comments.services import comments_published
from issues.models import Comment, Issue
from subscriptions.models import MailingList, Subscriber, Subscription
from tests.issues.payloads import PROVIDERS, WebhookPost, anymail_settings, inbound_post

pytestmark = pytest.mark.django_db

INBOUND_PROVIDERS = PROVIDERS  # all five have inbound webhooks


@pytest.fixture(autouse=True)
def webhook_settings(settings):
    settings.ANYMAIL = anymail_settings()


@pytest.fixture
def cast():
    news = MailingList.objects.create(
        name="News", slug="news", from_name="DWV", from_email="list@dwv.example", reply_to="editors@dwv.example"
    )
    alice = Subscriber.objects.create(email="alice@example.org", name="Alice")
    Subscription.objects.create(
        subscriber=alice,
        mailing_list=news,
        status=Subscription.Status.ACTIVE,
        consent_source=Subscription.ConsentSource.FORM,
        confirmed_at=timezone.now(),
    )
    issue = Issue.objects.create(title="On the strike", body="Body")
    issue.lists.add(news)
    reply_to = f"<dwv.{issue.pk}.{alice.pk}.k3j4h5@dwv.example>"
    return {"news": news, "alice": alice, "issue": issue, "reply_to": reply_to}


def reply(client, provider: str, cast, **values):
    values.setdefault("RECIPIENT", "alice@example.org")
    values.setdefault("IN_REPLY_TO", cast["reply_to"])
    return inbound_post(provider, **values).send(client)


# --- Inbound mail -------------------------------------------------------------------------


@pytest.mark.parametrize("provider", INBOUND_PROVIDERS)
def test_reply_to_an_issue_becomes_an_unhandled_comment(client, cast, provider):
    response = reply(client, provider, cast)

    assert response.status_code == 200
    comment = Comment.objects.get()
    assert comment.provider == provider
    assert comment.issue == cast["issue"]
    assert comment.subscriber == cast["alice"]
    assert comment.sender_email == "alice@example.org"
    assert comment.subject == "Re: The issue"
    assert comment.text.startswith("Thank you for the article on the strike.")
    assert comment.status == Comment.Status.UNHANDLED
    assert not comment.published


@pytest.mark.parametrize("provider", INBOUND_PROVIDERS)
def test_replayed_inbound_mail_is_stored_once(client, cast, provider):
    request = inbound_post(provider, RECIPIENT="alice@example.org", IN_REPLY_TO=cast["reply_to"])
    assert request.send(client).status_code == 200
    assert request.send(client).status_code == 200

    assert Comment.objects.count() == 1


@pytest.mark.parametrize("provider", INBOUND_PROVIDERS)
def test_inbound_without_credentials_is_refused(client, cast, provider):
    request = inbound_post(provider, RECIPIENT="alice@example.org", IN_REPLY_TO=cast["reply_to"])

    assert 400 <= request.send(client, auth=None).status_code < 500
    assert 400 <= request.send(client, auth="dwvhook:wrong").status_code < 500
    assert not Comment.objects.exists()


def test_malformed_inbound_payload_gets_400(client):
    response = WebhookPost("/webhooks/postmark/inbound/", b'{"FromFull": ', "application/json").send(client)

    assert response.status_code == 400
    assert not Comment.objects.exists()


def test_mail_that_answers_no_issue_is_still_a_comment(client, cast):
    assert reply(client, "postmark", cast, IN_REPLY_TO="<CAB123@mail.example.org>").status_code == 200

    comment = Comment.objects.get()
    assert comment.issue is None


def test_attachments_are_dropped_and_counted(client, cast):
    reply(client, "postmark", cast)

    comment = Comment.objects.get()
    assert comment.attachments_dropped == 1


def postmark_reply(client, cast, **changes):
    request = inbound_post("postmark", RECIPIENT="alice@example.org", IN_REPLY_TO=cast["reply_to"])
    body = json.loads(request.body)
    headers = changes.pop("Headers", [])
    body["Headers"].extend(headers)
    body.update(changes)
    return WebhookPost(request.path, json.dumps(body).encode(), request.content_type).send(client)


@pytest.mark.parametrize(
    "header",
    [
        {"Name": "Auto-Submitted", "Value": "auto-replied"},
        {"Name": "X-Autoreply", "Value": "yes"},
        {"Name": "Precedence", "Value": "auto_reply"},
        {"Name": "Precedence", "Value": "bulk"},
        {"Name": "Precedence", "Value": "junk"},
    ],
)
def test_auto_replies_are_not_comments(client, cast, header):
    assert postmark_reply(client, cast, Headers=[header]).status_code == 200

    assert not Comment.objects.exists()


def test_bounces_from_the_mailer_daemon_are_not_comments(client, cast):
    changes = {
        "From": "MAILER-DAEMON@mx.example.org",
        "FromFull": {"Email": "MAILER-DAEMON@mx.example.org", "Name": "Mail Delivery System", "MailboxHash": ""},
    }
    assert postmark_reply(client, cast, **changes).status_code == 200

    assert not Comment.objects.exists()


def test_a_delivery_report_is_not_a_comment(client, cast):
    raw = (
        b"From: postmaster@mx.example.org\r\nTo: list@dwv.example\r\nSubject: Undelivered Mail\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n--b--\r\n"
    )
    # Postmark posts the raw MIME too when asked to ("Include raw email content").
    assert postmark_reply(client, cast, RawEmail=raw.decode()).status_code == 200

    assert not Comment.objects.exists()


def test_html_only_mail_is_sanitised(client, cast):
    html = '<p onclick="steal()">Hello <script>alert(1)</script><a href="javascript:alert(1)">x</a></p>'
    assert postmark_reply(client, cast, TextBody="", HtmlBody=html).status_code == 200

    comment = Comment.objects.get()
    assert "<script" not in comment.html
    assert "onclick" not in comment.html
    assert "javascript:" not in comment.html
    assert comment.text.startswith("Hello")


def test_text_is_capped(client, cast):
    assert postmark_reply(client, cast, TextBody="a" * 300_000).status_code == 200

    comment = Comment.objects.get()
    assert len(comment.text) == 100_000
    assert comment.truncated


@pytest.mark.parametrize("provider", ["postmark", "mailgun", "brevo"])
def test_mail_to_the_unsubscribe_address_unsubscribes_the_sender(client, cast, provider):
    request = inbound_post(provider, RECIPIENT="alice@example.org", IN_REPLY_TO="")
    body = request.body.replace(b"list@dwv.example", b"list+unsubscribe@dwv.example")
    if provider == "mailgun":  # the form body is URL-encoded
        body = request.body.replace(b"list%40dwv.example", b"list%2Bunsubscribe%40dwv.example")

    response = WebhookPost(request.path, body, request.content_type).send(client)

    assert response.status_code == 200
    subscription = Subscription.objects.get(subscriber=cast["alice"])
    assert (subscription.status, subscription.unsubscribe_source) == ("unsubscribed", "mailto")
    assert not Comment.objects.exists()


# --- The editors' inbox ----------------------------------------------------------------------


@pytest.fixture
def staff():
    editors, _ = Group.objects.get_or_create(name="Editors")
    editor = User.objects.create_user("editor", is_staff=True)
    editor.groups.add(editors)
    outsider = User.objects.create_user("outsider", is_staff=True)
    reader = User.objects.create_user("reader")
    admin = User.objects.create_superuser("admin", password=None)
    return {"editor": editor, "outsider": outsider, "reader": reader, "admin": admin}


@pytest.fixture
def comment(cast):
    return Comment.objects.create(
        provider="postmark",
        event_id="e1",
        issue=cast["issue"],
        subscriber=cast["alice"],
        sender_email="alice@example.org",
        sender_name="Alice",
        subject="Re: On the strike",
        message_id="<reply-1@mail.example.org>",
        text="Solidarity! <b>bold</b>\nSecond line",
    )


def urls(comment):
    base = f"/editor/comments/{comment.pk}/"
    return {
        "list": ("get", "/editor/comments/"),
        "detail": ("get", base),
        "mark": ("post", base + "handled/"),
        "answer": ("post", base + "answer/"),
        "publish": ("post", base + "publish/"),
    }


@pytest.mark.parametrize("page", ["list", "detail", "mark", "answer", "publish"])
def test_anonymous_visitors_are_sent_to_log_in(client, comment, page):
    method, url = urls(comment)[page]

    response = getattr(client, method)(url)

    assert response.status_code == 302
    assert response["Location"].startswith("/editor/login/?next=")


@pytest.mark.parametrize("who", ["outsider", "reader"])
@pytest.mark.parametrize("page", ["list", "detail", "mark", "answer", "publish"])
def test_users_outside_the_staff_groups_are_refused(client, comment, staff, who, page):
    client.force_login(staff[who])
    method, url = urls(comment)[page]

    assert getattr(client, method)(url).status_code == 403
    comment.refresh_from_db()
    assert comment.status == Comment.Status.UNHANDLED


@pytest.mark.parametrize("who", ["editor", "admin"])
def test_editors_and_admins_see_the_inbox_and_the_comment(client, comment, staff, who):
    client.force_login(staff[who])

    listing = client.get("/editor/comments/")
    detail = client.get(f"/editor/comments/{comment.pk}/")

    assert listing.status_code == 200
    assert "Re: On the strike" in listing.content.decode()
    assert detail.status_code == 200
    page = detail.content.decode()
    assert "Solidarity! &lt;b&gt;bold&lt;/b&gt;" in page  # the writer's text is escaped
    assert "On the strike" in page


def test_marking_handled_moves_the_comment_out_of_the_unhandled_view(client, comment, staff):
    client.force_login(staff["editor"])

    response = client.post(f"/editor/comments/{comment.pk}/handled/", {"handled": "1"})

    assert response.status_code == 302
    comment.refresh_from_db()
    assert comment.status == Comment.Status.HANDLED
    assert comment.handled_by == staff["editor"]
    assert "Re: On the strike" not in client.get("/editor/comments/").content.decode()
    assert "Re: On the strike" in client.get("/editor/comments/?show=handled").content.decode()


def test_answer_is_mailed_to_the_writer_in_their_thread(client, comment, staff, outbox):
    client.force_login(staff["editor"])

    response = client.post(f"/editor/comments/{comment.pk}/answer/", {"text": "Thank you, Alice."})

    assert response.status_code == 302
    [path] = list(outbox.glob("*.eml"))
    message = email.message_from_bytes(path.read_bytes())
    assert message["To"] == "alice@example.org"
    assert message["Subject"] == "Re: Re: On the strike"
    assert message["In-Reply-To"] == "<reply-1@mail.example.org>"
    assert message["From"] == "DWV <list@dwv.example>"
    assert message["Reply-To"] == "editors@dwv.example"
    text = next(part for part in message.walk() if part.get_content_type() == "text/plain").get_payload(decode=True)
    assert "Thank you, Alice." in text.decode()
    assert "> Solidarity!" in text.decode()
    comment.refresh_from_db()
    assert comment.answer_text == "Thank you, Alice."
    assert comment.status == Comment.Status.HANDLED


def test_an_empty_answer_is_refused(client, comment, staff, outbox):
    client.force_login(staff["editor"])

    response = client.post(f"/editor/comments/{comment.pk}/answer/", {"text": "   "})

    assert response.status_code == 400
    assert not list(outbox.glob("*.eml"))


def test_publishing_needs_the_consent_box(client, comment, staff):
    client.force_login(staff["editor"])

    refused = client.post(f"/editor/comments/{comment.pk}/publish/", {})

    assert refused.status_code == 400
    assert "consent" in refused.content.decode()
    assert not comments_published(issue=comment.issue).exists()


def test_published_letter_is_listed_for_the_archive_with_its_consent(client, comment, staff):
    client.force_login(staff["editor"])

    response = client.post(f"/editor/comments/{comment.pk}/publish/", {"consent": "1"})

    assert response.status_code == 302
    assert list(comments_published(issue=comment.issue)) == [comment]
    comment.refresh_from_db()
    assert comment.consent_at is not None
    assert comment.consent_by == staff["editor"]

    client.post(f"/editor/comments/{comment.pk}/publish/", {"action": "unpublish"})
    assert not comments_published(issue=comment.issue).exists()


def test_a_comment_on_no_issue_cannot_be_published(client, comment, staff):
    Comment.objects.filter(pk=comment.pk).update(issue=None)
    client.force_login(staff["editor"])

    response = client.post(f"/editor/comments/{comment.pk}/publish/", {"consent": "1"})

    assert response.status_code == 400
    comment.refresh_from_db()
    assert not comment.published

"""Subscribe by writing: the list's +subscribe, +join, +leave and +help addresses, and requests in the inbox."""

from __future__ import annotations

import email
import email.policy
import re

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from issues.comments.requests import SUBSCRIBE, UNSUBSCRIBE, request_kind
from issues.models import Comment
from subscriptions.models import MailingList, Subscriber, Subscription, Suppression
from subscriptions.suppressions import suppression_add
from tests.issues.payloads import PROVIDERS, WebhookPost, anymail_settings, inbound_post

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def webhook_settings(settings, outbox):
    settings.ANYMAIL = anymail_settings()


@pytest.fixture
def eager(settings):
    from dwvlist.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


@pytest.fixture
def news():
    # A list without double opt-in: a request by mail must still be confirmed.
    return MailingList.objects.create(
        name="Détroit Voice",
        slug="news",
        from_name="DWV",
        from_email="list@dwv.example",
        reply_to="editors@dwv.example",
        double_opt_in=False,
    )


def write(client, provider: str, *, to: str, sender: str = "newreader@example.org", subject="Hello", text="Hi"):
    response = inbound_post(provider, RECIPIENT=sender, TO=to, SUBJECT=subject, TEXT=text).send(client)
    assert response.status_code == 200
    return response


def mails(outbox) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in sorted(outbox.glob("*.eml"))]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("command", ["subscribe", "join"])
def test_writing_to_subscribe_starts_a_double_opt_in_for_the_sender(
    client, news, outbox, eager, django_capture_on_commit_callbacks, provider, command
):
    with django_capture_on_commit_callbacks(execute=True):
        write(client, provider, to=f"list+{command}@dwv.example", subject="Please add me, Dear Editors")

    subscription = Subscription.objects.get(subscriber__email="newreader@example.org")
    assert subscription.status == "pending"  # nothing changes until the reader confirms
    assert subscription.consent_source == "email"
    assert subscription.consent_detail.startswith("asked by email: Message-ID <")
    [mail] = mails(outbox)
    assert mail["To"] == "newreader@example.org"
    assert "confirm" in mail["Subject"].lower()
    assert "Dear Editors" not in mail.as_string()  # the writer's words are never echoed
    assert not Comment.objects.exists()

    link = re.search(r"https?://\S+/confirm/\S+/", mail.get_body(preferencelist=("plain",)).get_content()).group(0)
    path = link.split("://", 1)[1].split("/", 1)[1]
    client.post("/" + path)
    subscription.refresh_from_db()
    assert subscription.status == "active"


def test_a_second_request_within_the_interval_sends_no_second_mail(
    client, news, outbox, eager, django_capture_on_commit_callbacks
):
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            write(client, "postmark", to="list+subscribe@dwv.example")
    assert len(mails(outbox)) == 1


def test_a_suppressed_or_erased_address_gets_nothing_and_nothing_changes(
    client, news, outbox, eager, django_capture_on_commit_callbacks
):
    suppression_add(email="gone@example.org", reason=Suppression.Reason.ERASED, keep_address=False)
    with django_capture_on_commit_callbacks(execute=True):
        response = write(client, "mailgun", to="list+subscribe@dwv.example", sender="gone@example.org")
    assert response.status_code == 200  # the same answer as for anyone
    assert not Subscriber.objects.filter(email="gone@example.org").exists()
    assert mails(outbox) == []


def test_writing_to_leave_answers_with_the_link_and_unsubscribes_nobody(client, news, outbox, eager):
    reader = Subscriber.objects.create(email="alice@example.org")
    Subscription.objects.create(
        subscriber=reader, mailing_list=news, status="active", consent_source="form", confirmed_at=timezone.now()
    )
    write(client, "sendgrid", to="list+leave@dwv.example", sender="alice@example.org")

    assert Subscription.objects.get(subscriber=reader).status == "active"  # a From header proves nothing
    [mail] = mails(outbox)
    assert mail["To"] == "alice@example.org" and mail["Auto-Submitted"] == "auto-replied"
    text = mail.get_body(preferencelist=("plain",)).get_content()
    link = re.search(r"https?://\S+/u/\S+/", text).group(0)
    client.post("/" + link.split("://", 1)[1].split("/", 1)[1])
    assert Subscription.objects.get(subscriber=reader).status == "unsubscribed"


def test_help_answers_with_what_the_addresses_do(client, news, outbox):
    write(client, "brevo", to="list+help@dwv.example")
    [mail] = mails(outbox)
    text = mail.get_body(preferencelist=("plain",)).get_content()
    assert "list+subscribe@dwv.example" in text and "list+leave@dwv.example" in text
    assert "editors@dwv.example" in text


@pytest.mark.parametrize(
    "header",
    ["Auto-Submitted: auto-replied", "Precedence: bulk", "List-Id: <other.lists.example.org>", "X-Autoreply: yes"],
)
def test_auto_replies_and_list_mail_get_no_answer(client, news, outbox, header):
    # Postmark passes every header of the mail through: add the automatic one there.
    post = inbound_post("postmark", RECIPIENT="bot@example.org", TO="list+help@dwv.example")
    name, value = header.split(": ", 1)
    body = post.body.replace(b'"Headers": [', f'"Headers": [{{"Name": "{name}", "Value": "{value}"}}, '.encode(), 1)
    assert body != post.body
    response = WebhookPost(post.path, body, post.content_type).send(client)
    assert response.status_code == 200
    assert mails(outbox) == []
    assert not Comment.objects.exists()


def test_answers_to_one_address_are_rate_limited(client, news, outbox):
    for _ in range(5):
        write(client, "postmark", to="list+help@dwv.example", sender="curious@example.org")
    assert len(mails(outbox)) == 1


# --- The editors' inbox --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "text", "kind"),
    [
        ("Please add me", "Hi", SUBSCRIBE),
        ("Re: subscribe", "", SUBSCRIBE),
        ("Hello", "I would like to receive the newsletter.\nThanks", SUBSCRIBE),
        ("Hello", "Sign me up!", SUBSCRIBE),
        ("unsubscribe", "", UNSUBSCRIBE),
        ("Hello", "Please remove me from this list.", UNSUBSCRIBE),
        ("Re: The strike", "Take me off your list", UNSUBSCRIBE),
        ("Re: The strike", "Great article on the plant.\n\n> you can subscribe at the site", None),
        ("A comment", "Workers should join the union.", None),
    ],
)
def test_requests_are_recognised_from_the_subject_or_first_lines(subject, text, kind):
    assert request_kind(subject=subject, text=text) == kind


@pytest.fixture
def editor_client(client):
    editor = User.objects.create_user("eddie", "eddie@staff.example.org", "a-long-test-password-42", is_staff=True)
    editor.groups.add(Group.objects.get(name="Editors"))
    client.force_login(editor)
    return client


def test_an_editor_turns_a_please_add_me_into_a_confirmation_with_its_consent_record(
    client, editor_client, news, outbox, eager, django_capture_on_commit_callbacks
):
    write(client, "mailgun", to="editors@dwv.example", subject="Please add me to the list", text="Thanks")
    comment = Comment.objects.get()
    assert comment.mailing_list == news
    page = editor_client.get(f"/editor/comments/{comment.pk}/").content.decode()
    assert "This looks like a subscription request" in page and "Send them a confirmation" in page

    with django_capture_on_commit_callbacks(execute=True):
        response = editor_client.post(
            f"/editor/comments/{comment.pk}/request/", {"action": "subscribe", "mailing_list": news.pk}
        )
    assert response.status_code == 302
    subscription = Subscription.objects.get(subscriber__email="newreader@example.org")
    assert (subscription.status, subscription.consent_source) == ("pending", "email")
    assert comment.message_id and comment.message_id in subscription.consent_detail
    comment.refresh_from_db()
    assert comment.status == "handled"
    [mail] = mails(outbox)
    assert mail["To"] == "newreader@example.org"


def test_a_remove_me_gets_the_link_to_leave_from_the_inbox(client, editor_client, news, outbox):
    reader = Subscriber.objects.create(email="newreader@example.org")
    Subscription.objects.create(
        subscriber=reader, mailing_list=news, status="active", consent_source="form", confirmed_at=timezone.now()
    )
    write(client, "postmark", to="editors@dwv.example", subject="remove me")
    comment = Comment.objects.get()
    assert "This looks like a request to leave" in editor_client.get(f"/editor/comments/{comment.pk}/").content.decode()
    editor_client.post(f"/editor/comments/{comment.pk}/request/", {"action": "leave", "mailing_list": news.pk})
    [mail] = mails(outbox)
    assert "/u/" in mail.get_body(preferencelist=("plain",)).get_content()
    assert Subscription.objects.get(subscriber=reader).status == "active"


def test_mail_that_is_not_a_request_stays_a_plain_comment(client, editor_client, news):
    write(client, "sendgrid", to="editors@dwv.example", subject="On the strike", text="Great article.")
    comment = Comment.objects.get()
    page = editor_client.get(f"/editor/comments/{comment.pk}/").content.decode()
    assert "This looks like" not in page


def test_the_footer_and_archive_say_how_to_subscribe_by_writing(client, news):
    from issues.models import Issue
    from issues.rendering import issue_render

    news.subscribe_by_mail = True
    news.save()
    issue = Issue.objects.create(title="One", body="Body")
    issue.lists.add(news)
    rendered = issue_render(issue)
    assert "Subscribe by writing to list+subscribe@dwv.example" in rendered.text
    assert 'href="mailto:list+subscribe@dwv.example"' in rendered.html
    page = client.get("/archive/news/").content.decode()
    assert 'href="mailto:list+subscribe@dwv.example"' in page

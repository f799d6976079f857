"""Readers' replies of any size, linked to their issue however the provider rewrote the Message-ID."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from botocore.config import Config
from django.utils import timezone

from issues.delivery.record import sent_messages_record
from issues.models import Comment, Delivery, Issue
from subscriptions.models import MailingList, Subscriber, Subscription
from tests.issues.payloads import PROVIDERS, WEBHOOK_SECRET, WebhookPost, anymail_settings, basic_auth, inbound_post
from tests.issues.payloads.replies import TEXT, attachment_bytes, reply_mime, reply_post, ses_inbound_post

pytestmark = pytest.mark.django_db
MiB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def webhook_settings(settings):
    settings.ANYMAIL = anymail_settings()


@pytest.fixture
def cast():
    news = MailingList.objects.create(name="News", slug="news", from_name="DWV", from_email="list@dwv.example")
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
    return {"news": news, "alice": alice, "issue": issue, "our_id": f"<dwv.{issue.pk}.{alice.pk}.k3j4h5@dwv.example>"}


def sent_copy(issue: Issue, subscriber: Subscriber, provider_message_id: str, *, batch_of: int = 1) -> Delivery:
    """The reader's ledger row as sent, with the provider's id recorded (shared by a batch of `batch_of`)."""
    now = timezone.now()
    rows = [Delivery.objects.create(issue=issue, subscriber=subscriber, mailing_list=issue.lists.first(),
                                    email=subscriber.email, status="sent", sent_at=now,
                                    provider_message_id=provider_message_id)]  # fmt: skip
    for n in range(batch_of - 1):
        other = Subscriber.objects.create(email=f"other{n}@example.org")
        rows.append(Delivery.objects.create(issue=issue, subscriber=other, email=other.email, status="sent",
                                            sent_at=now, provider_message_id=provider_message_id))  # fmt: skip
    sent_messages_record(issue.pk, now, [r.pk for r in rows], [provider_message_id] * len(rows))
    return rows[0]


def http_post(live_server, request: WebhookPost) -> int:
    headers = {"Content-Type": request.content_type, "Authorization": basic_auth(WEBHOOK_SECRET), **request.headers}
    http_request = urllib.request.Request(live_server.url + request.path, data=request.body, headers=headers)
    try:
        with urllib.request.urlopen(http_request, timeout=120) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


# --- Size ------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("size", [3 * MiB, 20 * MiB], ids=["3MiB", "20MiB"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_reply_with_a_large_attachment_is_kept_without_it_over_real_http(live_server, cast, provider, size):
    request = reply_post(provider, sender="alice@example.org", in_reply_to=cast["our_id"],
                         attachment=attachment_bytes(size))  # fmt: skip
    if provider != "brevo":  # Brevo's post names the attachment; the others carry it
        assert len(request.body) > size

    assert http_post(live_server, request) == 200

    comment = Comment.objects.get()
    assert comment.text.strip() == TEXT
    assert (comment.issue, comment.subscriber) == (cast["issue"], cast["alice"])
    assert comment.attachments_dropped == 1
    assert len(comment.html) + len(comment.text) < 1000  # the attachment is nowhere in the row


def test_a_post_larger_than_inbound_max_bytes_is_refused_and_stores_nothing(client, cast, settings):
    settings.INBOUND_MAX_BYTES = 4 * MiB
    request = reply_post("postmark", sender="alice@example.org", in_reply_to=cast["our_id"],
                         attachment=attachment_bytes(4 * MiB))  # fmt: skip

    response = request.send(client)

    assert response.status_code == 413
    assert not Comment.objects.exists()


def test_tracking_webhooks_keep_the_site_wide_body_limit(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1 * MiB
    events = [{"email": f"r{n}@example.org", "timestamp": 1, "event": "delivered", "sg_event_id": uuid.uuid4().hex,
               "padding": "x" * 1000} for n in range(1500)]  # fmt: skip
    request = WebhookPost("/webhooks/sendgrid/tracking/", json.dumps(events).encode(), "application/json")

    assert request.send(client).status_code == 400


def test_a_malformed_large_multipart_post_gets_400(client, cast, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = b'--b\r\nContent-Disposition: form-data; name="text"\r\n\r\n' + b"x" * 5000  # never closed
    response = WebhookPost("/webhooks/sendgrid/inbound/", body, "multipart/form-data; boundary=b").send(client)

    assert response.status_code in (200, 400)
    assert not Comment.objects.exists()


def test_reply_text_over_the_site_limit_in_a_form_field_is_kept(client, cast, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    request = reply_post("mailgun", sender="alice@example.org", in_reply_to=cast["our_id"], attachment=None)
    long_text = "Solidarity, " + "ünïcödé " * 20_000
    request.body = request.body.replace(TEXT.encode(), long_text.encode(), 1)

    assert request.send(client).status_code == 200

    assert Comment.objects.get().text.startswith("Solidarity, ünïcödé")


# --- Linking ---------------------------------------------------------------------------------


def test_an_ses_reply_is_linked_by_the_ses_message_id_in_in_reply_to(client, cast):
    ses_id = "0100018c7e8f9a2b-3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f-000000"
    sent_copy(cast["issue"], cast["alice"], ses_id)
    raw = reply_mime(sender="alice@example.org", in_reply_to=f"<{ses_id}@email.amazonses.com>", attachment=None)

    assert ses_inbound_post(raw, sender="alice@example.org").send(client).status_code == 200

    comment = Comment.objects.get()
    assert (comment.issue, comment.subscriber) == (cast["issue"], cast["alice"])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_reply_is_linked_by_the_provider_message_id_recorded_at_send(client, cast, provider):
    recorded = f"<{uuid.uuid4()}@{provider}.example>"
    sent_copy(cast["issue"], cast["alice"], recorded)

    assert inbound_post(provider, RECIPIENT="alice@example.org", IN_REPLY_TO=recorded).send(client).status_code == 200

    comment = Comment.objects.get()
    assert (comment.issue, comment.subscriber) == (cast["issue"], cast["alice"])


def test_a_batch_shared_id_finds_the_reader_by_address(client, cast):
    sent_copy(cast["issue"], cast["alice"], "<batch-1@mg.example>", batch_of=5)
    raw = reply_mime(sender="ALICE@example.org", in_reply_to="<batch-1@mg.example>", attachment=None)

    ses_inbound_post(raw, sender="ALICE@example.org").send(client)

    comment = Comment.objects.get()
    assert (comment.issue, comment.subscriber) == (cast["issue"], cast["alice"])


def test_a_reply_to_a_stranger_message_links_to_no_issue(client, cast):
    sent_copy(cast["issue"], cast["alice"], "0100018c-real")
    raw = reply_mime(sender="alice@example.org", in_reply_to="<0100018c-forged@evil.example.net>", attachment=None)

    ses_inbound_post(raw, sender="alice@example.org").send(client)

    comment = Comment.objects.get()
    assert comment.issue is None
    assert comment.subscriber == cast["alice"]  # by address, as before


# --- HTML-only replies -----------------------------------------------------------------------


def test_an_html_only_reply_becomes_readable_text(client, cast):
    html = (
        "<html><head><style>p{color:red}</style><title>x</title></head><body>"
        "<p>Hello editors</p><p>click ok<br>next&nbsp;line &amp; more</p>"
        "<div>A div</div><div>another</div><ul><li>one</li><li>two</li></ul>"
        "<script>alert(1)</script><blockquote>quoted</blockquote></body></html>"
    )
    raw = reply_mime(sender="alice@example.org", in_reply_to=cast["our_id"], attachment=None, html_only=html)

    ses_inbound_post(raw, sender="alice@example.org").send(client)

    comment = Comment.objects.get()
    assert comment.text == "Hello editors\n\nclick ok\nnext line & more\n\nA div\nanother\n\n- one\n- two\n\nquoted"
    assert "<script" not in comment.html


# --- Amazon SNS subscription confirmation and Brevo without an API key --------------------


class FakeSns:
    """A loopback stand-in for the SNS API: records ConfirmSubscription calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                fake.calls.append(body)
                arn = "arn:aws:sns:us-east-1:123456789012:dwv-ses-events:1f2e"
                if "json" in (self.headers.get("Content-Type") or ""):
                    payload, content_type = json.dumps({"SubscriptionArn": arn}).encode(), "application/x-amz-json-1.0"
                else:
                    payload = (
                        '<ConfirmSubscriptionResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">'
                        f"<ConfirmSubscriptionResult><SubscriptionArn>{arn}</SubscriptionArn>"
                        "</ConfirmSubscriptionResult><ResponseMetadata><RequestId>r1</RequestId>"
                        "</ResponseMetadata></ConfirmSubscriptionResponse>"
                    ).encode()
                    content_type = "text/xml"
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_sns():
    sns = FakeSns()
    yield sns
    sns.stop()


def ses_settings(settings, *, auto_confirm: bool, endpoint: str) -> None:
    settings.ANYMAIL = {
        **anymail_settings(),
        "AMAZON_SES_AUTO_CONFIRM_SNS_SUBSCRIPTIONS": auto_confirm,
        "AMAZON_SES_SESSION_PARAMS": {
            "aws_access_key_id": "AKIDEXAMPLE",
            "aws_secret_access_key": "secret-example",
            "region_name": "us-east-1",
        },
        "AMAZON_SES_CLIENT_PARAMS": {
            "endpoint_url": endpoint,
            "config": Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5),
        },
    }


def confirmation_post(path: str = "/webhooks/amazon_ses/tracking/") -> WebhookPost:
    sns_id = str(uuid.uuid4())
    body = {
        "Type": "SubscriptionConfirmation",
        "MessageId": sns_id,
        "Token": "2336412f37fb687f5d51e6e2425f004aed",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:dwv-ses-events",
        "Message": "You have chosen to subscribe to the topic arn:aws:sns:us-east-1:123456789012:dwv-ses-events.",
        "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=2336412f37fb687f5d",
        "Timestamp": "2025-08-01T16:45:32.000Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000.pem",
    }
    headers = {"X-Amz-Sns-Message-Type": "SubscriptionConfirmation", "X-Amz-Sns-Message-Id": sns_id}
    return WebhookPost(path, json.dumps(body).encode(), "text/plain; charset=UTF-8", headers)


@pytest.mark.parametrize("path", ["/webhooks/amazon_ses/tracking/", "/webhooks/amazon_ses/inbound/"])
def test_sns_confirmation_with_auto_confirm_off_answers_200_logs_the_url_and_calls_no_aws(
    client, settings, fake_sns, caplog, path
):
    ses_settings(settings, auto_confirm=False, endpoint=fake_sns.url)

    with caplog.at_level(logging.WARNING, logger="issues.feedback.view_mixins"):
        response = confirmation_post(path).send(client)

    assert response.status_code == 200
    assert fake_sns.calls == []
    assert "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=2336412f37fb687f5d" in caplog.text


def test_sns_confirmation_with_auto_confirm_on_confirms_with_aws(client, settings, fake_sns):
    ses_settings(settings, auto_confirm=True, endpoint=fake_sns.url)

    response = confirmation_post().send(client)

    assert response.status_code == 200
    assert len(fake_sns.calls) == 1
    assert "ConfirmSubscription" in fake_sns.calls[0] and "2336412f37fb687f5d51e6e2425f004aed" in fake_sns.calls[0]


def test_sns_confirmation_that_cannot_reach_aws_answers_503_and_logs_the_url(client, settings, caplog):
    ses_settings(settings, auto_confirm=True, endpoint="http://127.0.0.1:9")  # nothing listens on discard

    with caplog.at_level(logging.ERROR, logger="issues.feedback.view_mixins"):
        response = confirmation_post().send(client)

    assert response.status_code == 503
    assert "Action=ConfirmSubscription" in caplog.text


@pytest.mark.parametrize(("value", "parsed"), [("False", "False"), ("0", "False"), ("yes", "True")])
def test_the_auto_confirm_setting_is_parsed_as_a_boolean(tmp_path, value, parsed):
    code = (
        "from django.conf import settings; print(repr(settings.ANYMAIL['AMAZON_SES_AUTO_CONFIRM_SNS_SUBSCRIPTIONS']))"
    )
    env = {**os.environ, "DEBUG": "1", "DJANGO_SETTINGS_MODULE": "dwvlist.settings", "VAR_DIR": str(tmp_path),
           "ANYMAIL_AMAZON_SES_AUTO_CONFIRM_SNS_SUBSCRIPTIONS": value}  # fmt: skip
    result = subprocess.run([sys.executable, "-c", "import django; django.setup(); " + code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.stdout.strip() == parsed, result.stderr


def test_a_misspelt_auto_confirm_setting_stops_start_up(tmp_path):
    env = {**os.environ, "DEBUG": "1", "DJANGO_SETTINGS_MODULE": "dwvlist.settings", "VAR_DIR": str(tmp_path),
           "ANYMAIL_AMAZON_SES_AUTO_CONFIRM_SNS_SUBSCRIPTIONS": "nope"}  # fmt: skip
    result = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode != 0
    assert "ANYMAIL_AMAZON_SES_AUTO_CONFIRM_SNS_SUBSCRIPTIONS" in result.stderr.splitlines()[-1]


@pytest.mark.parametrize("api_key", [None, "brevo-test-key"])
def test_brevo_inbound_keeps_the_text_and_drops_attachments_with_or_without_an_api_key(client, cast, settings,
                                                                                        api_key):  # fmt: skip
    anymail = {k: v for k, v in anymail_settings().items() if k != "BREVO_API_KEY"}
    # An API URL nothing answers at: attachments are never downloaded.
    settings.ANYMAIL = {**anymail, "BREVO_API_URL": "http://127.0.0.1:9/v3/"}
    if api_key:
        settings.ANYMAIL["BREVO_API_KEY"] = api_key
    request = reply_post("brevo", sender="alice@example.org", in_reply_to=cast["our_id"], attachment=b"%PDF-1.4")

    response = request.send(client)

    assert response.status_code == 200
    comment = Comment.objects.get()
    assert comment.text.strip() == TEXT
    assert comment.attachments_dropped == 1

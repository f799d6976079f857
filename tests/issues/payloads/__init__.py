"""Provider payloads, written in each provider's documented format, and how to post them.

Each JSON file is a template: {{NAME}} placeholders are filled per test
(recipient, message id, event id, times). A post is built once as
(path, body, content type, headers) so the same request can go through
Django's test client or over real HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

HERE = Path(__file__).parent
WEBHOOK_SECRET = "dwvhook:5ecret-pa55word"
MAILGUN_SIGNING_KEY = "mailgun-signing-key-0123456789abcdef"
PROVIDERS = ("mailgun", "sendgrid", "postmark", "amazon_ses", "brevo")


def anymail_settings() -> dict:
    """Return the ANYMAIL setting the tests run with."""
    return {
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_SIGNING_KEY,
        "BREVO_API_KEY": "brevo-test-key",
        "AMAZON_SES_AUTO_CONFIRM_SNS_SUBSCRIPTIONS": False,
    }


@dataclass
class WebhookPost:
    path: str
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)

    def send(self, client, *, auth: str | None = WEBHOOK_SECRET):
        """Post through Django's test client."""
        headers = dict(self.headers)
        if auth is not None:
            headers["Authorization"] = basic_auth(auth)
        return client.generic("POST", self.path, self.body, content_type=self.content_type, headers=headers)


def basic_auth(secret: str) -> str:
    return "Basic " + base64.b64encode(secret.encode()).decode()


def render(name: str, **values) -> str:
    return _render(name, **values)


def _render(name: str, **values) -> str:
    text = (HERE / name).read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", str(value))
    assert "{{" not in text, f"unfilled placeholder in {name}: {text[text.index('{{') :][:40]}"
    return text


def defaults(provider: str, values: dict) -> dict:
    now = values.pop("when", None) or time.time()
    filled = {
        "TIMESTAMP": int(now),
        "ISO_TIME": datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        # Postmark's bounce ID is a number; the others take any string.
        "EVENT_ID": random.randint(10**12, 10**15) if provider == "postmark" else uuid.uuid4().hex,
        "MESSAGE_ID": f"<{uuid.uuid4().hex}@esp.example>",
        "ISSUE_ID": "",
        "SUBSCRIBER_ID": "",
        "DELIVERY_ID": "",
        "IN_REPLY_TO": "",
        "SIGNATURE": "",
    }
    filled.update(values)
    return filled


def mailgun_signature(*, timestamp: str, token: str, key: str = MAILGUN_SIGNING_KEY) -> str:
    return hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()


def tracking_post(provider: str, kind: str, **values) -> WebhookPost:
    """Return the provider's tracking webhook post for one event of this kind."""
    values = defaults(provider, values)
    path = f"/webhooks/{provider}/tracking/"
    if provider == "mailgun":
        values["SIGNATURE"] = mailgun_signature(timestamp=str(values["TIMESTAMP"]), token=str(values["EVENT_ID"]))
    if provider == "amazon_ses":
        inner = json.dumps(json.loads(render(f"amazon_ses_{kind}.json", **values)))
        body = render("amazon_ses_sns_envelope.json", SNS_MESSAGE=json.dumps(inner), **values)
        headers = {"X-Amz-Sns-Message-Type": "Notification", "X-Amz-Sns-Message-Id": str(values["EVENT_ID"])}
        return WebhookPost(path, body.encode(), "text/plain; charset=UTF-8", headers)
    body = json.dumps(json.loads(render(f"{provider}_{kind}.json", **values)))
    return WebhookPost(path, body.encode(), "application/json")


def sendgrid_batch(events: list[WebhookPost]) -> WebhookPost:
    """Return one SendGrid post carrying the events of several (SendGrid batches its events)."""
    items = [item for post in events for item in json.loads(post.body)]
    return WebhookPost("/webhooks/sendgrid/tracking/", json.dumps(items).encode(), "application/json")


_DEFAULT_TO = "list@dwv.example"
_DEFAULT_SUBJECT = "Re: The issue"
_DEFAULT_TEXT = "Thank you for the article on the strike."


def raw_reply(
    *,
    sender: str,
    to: str = _DEFAULT_TO,
    in_reply_to: str = "",
    extra_headers: str = "",
    subject: str = _DEFAULT_SUBJECT,
    text: str = _DEFAULT_TEXT,
) -> bytes:
    """Return a reader's reply as raw MIME (what SES's SNS action carries)."""
    lines = [
        f"From: Alice Reader <{sender}>",
        f"To: {to}",
        f"Subject: {subject}",
        "Message-ID: <raw-reply-1@mail.example.org>",
        *([f"In-Reply-To: {in_reply_to}", f"References: {in_reply_to}"] if in_reply_to else []),
        *([extra_headers] if extra_headers else []),
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "",
        text,
        "",
    ]
    return "\r\n".join(lines).encode()


def inbound_post(provider: str, **values) -> WebhookPost:
    """Return the provider's inbound webhook post of a reader's reply.

    TO, SUBJECT and TEXT (plain words, no quotes) replace the reply's
    recipient, subject and text.
    """
    swaps = {
        _DEFAULT_TO: values.pop("TO", _DEFAULT_TO),
        _DEFAULT_SUBJECT: values.pop("SUBJECT", _DEFAULT_SUBJECT),
        _DEFAULT_TEXT: values.pop("TEXT", _DEFAULT_TEXT),
    }
    values = defaults(provider, values)
    path = f"/webhooks/{provider}/inbound/"

    def render(name: str, **filled) -> str:
        text = _render(name, **filled)
        for old, new in swaps.items():
            text = text.replace(old, new)
        return text

    if provider == "mailgun":
        values["SIGNATURE"] = mailgun_signature(timestamp=str(values["TIMESTAMP"]), token=str(values["EVENT_ID"]))
        fields = json.loads(render("mailgun_inbound.json", **values))
        return WebhookPost(path, urlencode(fields).encode(), "application/x-www-form-urlencoded")
    if provider == "sendgrid":
        fields = json.loads(render("sendgrid_inbound.json", **values))
        return WebhookPost(path, *multipart(fields))
    if provider == "amazon_ses":
        raw = raw_reply(
            sender=values["RECIPIENT"],
            in_reply_to=values["IN_REPLY_TO"],
            to=swaps[_DEFAULT_TO],
            subject=swaps[_DEFAULT_SUBJECT],
            text=swaps[_DEFAULT_TEXT],
        )
        values["RAW_MIME_BASE64"] = base64.b64encode(raw).decode()
        inner = json.dumps(json.loads(render("amazon_ses_inbound.json", **values)))
        body = render("amazon_ses_sns_envelope.json", SNS_MESSAGE=json.dumps(inner), **values)
        headers = {"X-Amz-Sns-Message-Type": "Notification", "X-Amz-Sns-Message-Id": str(values["EVENT_ID"])}
        return WebhookPost(path, body.encode(), "text/plain; charset=UTF-8", headers)
    body = json.dumps(json.loads(render(f"{provider}_inbound.json", **values)))
    return WebhookPost(path, body.encode(), "application/json")


def multipart(fields: dict[str, str]) -> tuple[bytes, str]:
    boundary = "----dwvtestboundary" + uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n')
    parts.append(f"--{boundary}--\r\n")
    return "".join(parts).encode(), f"multipart/form-data; boundary={boundary}"

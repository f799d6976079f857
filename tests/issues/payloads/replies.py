"""A reader's reply with an attachment, posted as each provider's inbound webhook posts it.

Mailgun routes and SendGrid Inbound Parse post multipart forms with the
attachment as a file part; Postmark posts JSON with the attachment base64
encoded; Amazon SES (SNS action) posts the raw MIME base64 encoded in the
notification; Brevo posts JSON naming the attachment, to be downloaded from
its API with a token.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from email.message import EmailMessage

from tests.issues.payloads import WebhookPost, mailgun_signature

TEXT = "Thank you for the article on the strike.\n\nSolidarity from the night shift."


def attachment_bytes(size: int) -> bytes:
    """Return `size` bytes that do not compress away (like a photo)."""
    block = uuid.uuid4().bytes * 4096
    return (block * (size // len(block) + 1))[:size]


def _form(fields: list[tuple[str, str]], files: list[tuple[str, str, str, bytes]]) -> tuple[bytes, str]:
    boundary = "----dwvreply" + uuid.uuid4().hex
    out = bytearray()
    for name, value in fields:
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += value.encode() + b"\r\n"
    for name, filename, content_type, content in files:
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        out += content + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def reply_mime(*, sender: str, in_reply_to: str, attachment: bytes | None, html_only: str = "") -> bytes:
    """Return the reply as raw MIME: text (or only HTML), and the attachment if any."""
    mail = EmailMessage()
    mail["From"] = f"Alice Reader <{sender}>"
    mail["To"] = "list@dwv.example"
    mail["Subject"] = "Re: The issue"
    mail["Message-ID"] = f"<{uuid.uuid4().hex}@mail.example.org>"
    if in_reply_to:
        mail["In-Reply-To"] = in_reply_to
        mail["References"] = in_reply_to
    if html_only:
        mail.set_content(html_only, subtype="html")
    else:
        mail.set_content(TEXT)
    if attachment is not None:
        mail.add_attachment(attachment, maintype="application", subtype="pdf", filename="minutes.pdf")
    return bytes(mail)


def reply_post(provider: str, *, sender: str, in_reply_to: str, attachment: bytes | None) -> WebhookPost:
    """Return the provider's inbound post of a reply with one attachment (or none)."""
    path = f"/webhooks/{provider}/inbound/"
    headers_text = (
        f"From: Alice Reader <{sender}>\nTo: list@dwv.example\nSubject: Re: The issue\n"
        f"Message-ID: <{uuid.uuid4().hex}@mail.example.org>\nIn-Reply-To: {in_reply_to}\nReferences: {in_reply_to}\n"
    )
    files = [("attachment-1", "minutes.pdf", "application/pdf", attachment)] if attachment is not None else []
    if provider == "mailgun":
        token, stamp = uuid.uuid4().hex, str(int(time.time()))
        message_headers = [
            ["From", f"Alice Reader <{sender}>"],
            ["To", "list@dwv.example"],
            ["Subject", "Re: The issue"],
            ["Message-Id", f"<{uuid.uuid4().hex}@mail.example.org>"],
            ["In-Reply-To", in_reply_to],
            ["References", in_reply_to],
        ]
        fields = [
            ("recipient", "list@dwv.example"),
            ("sender", sender),
            ("from", f"Alice Reader <{sender}>"),
            ("subject", "Re: The issue"),
            ("body-plain", TEXT),
            ("stripped-text", TEXT),
            ("attachment-count", str(len(files))),
            ("timestamp", stamp),
            ("token", token),
            ("signature", mailgun_signature(timestamp=stamp, token=token)),
            ("message-headers", json.dumps(message_headers)),
        ]
        return WebhookPost(path, *_form(fields, files))
    if provider == "sendgrid":
        info = {"attachment1": {"filename": "minutes.pdf", "type": "application/pdf"}} if files else {}
        fields = [
            ("headers", headers_text),
            ("to", "list@dwv.example"),
            ("from", f"Alice Reader <{sender}>"),
            ("subject", "Re: The issue"),
            ("text", TEXT),
            ("envelope", json.dumps({"to": ["list@dwv.example"], "from": sender})),
            ("attachments", str(len(files))),
            ("attachment-info", json.dumps(info)),
            ("charsets", json.dumps({"to": "UTF-8", "from": "UTF-8", "subject": "UTF-8", "text": "UTF-8"})),
        ]
        return WebhookPost(path, *_form(fields, [("attachment1", *f[1:]) for f in files]))
    if provider == "postmark":
        body = {
            "FromName": "Alice Reader",
            "From": sender,
            "FromFull": {"Email": sender, "Name": "Alice Reader", "MailboxHash": ""},
            "To": "list@dwv.example",
            "ToFull": [{"Email": "list@dwv.example", "Name": "", "MailboxHash": ""}],
            "OriginalRecipient": "list@dwv.example",
            "Subject": "Re: The issue",
            "MessageID": str(uuid.uuid4()),
            "Date": "Fri, 1 Aug 2025 16:45:32 -04:00",
            "TextBody": TEXT,
            "HtmlBody": "",
            "Headers": [
                {"Name": "Message-ID", "Value": f"<{uuid.uuid4().hex}@mail.example.org>"},
                {"Name": "In-Reply-To", "Value": in_reply_to},
                {"Name": "References", "Value": in_reply_to},
            ],
            "Attachments": [
                {
                    "Name": "minutes.pdf",
                    "Content": base64.b64encode(attachment).decode(),
                    "ContentType": "application/pdf",
                    "ContentLength": len(attachment),
                }
            ]
            if attachment is not None
            else [],
        }
        return WebhookPost(path, json.dumps(body).encode(), "application/json")
    if provider == "brevo":
        item = {
            "Uuid": [str(uuid.uuid4())],
            "MessageId": f"<{uuid.uuid4().hex}@mail.example.org>",
            "InReplyTo": in_reply_to,
            "From": {"Name": "Alice Reader", "Address": sender},
            "To": [{"Name": None, "Address": "list@dwv.example"}],
            "Subject": "Re: The issue",
            "Headers": {
                "Message-ID": f"<{uuid.uuid4().hex}@mail.example.org>",
                "In-Reply-To": in_reply_to,
                "References": in_reply_to,
                "From": f"Alice Reader <{sender}>",
                "To": "list@dwv.example",
                "Subject": "Re: The issue",
            },
            "RawTextBody": TEXT,
            "RawHtmlBody": "",
            "Attachments": [
                {
                    "Name": "minutes.pdf",
                    "ContentType": "application/pdf",
                    "ContentLength": len(attachment),
                    "ContentID": "",
                    "DownloadToken": "eyJmb2xkZXIiOiIyMDI1MDgwMSJ9",
                }
            ]
            if attachment is not None
            else [],
        }
        return WebhookPost(path, json.dumps({"items": [item]}).encode(), "application/json")
    return ses_inbound_post(reply_mime(sender=sender, in_reply_to=in_reply_to, attachment=attachment), sender=sender)


def ses_inbound_post(raw: bytes, *, sender: str) -> WebhookPost:
    """Return Amazon SES's inbound notification (SNS action, base64) carrying this raw mail."""
    sns_id = str(uuid.uuid4())
    notification = {
        "notificationType": "Received",
        "mail": {
            "timestamp": "2025-08-01T16:45:32.000Z",
            "source": sender,
            "messageId": uuid.uuid4().hex,
            "destination": ["list@dwv.example"],
        },
        "receipt": {
            "recipients": ["list@dwv.example"],
            "spamVerdict": {"status": "PASS"},
            "action": {
                "type": "SNS",
                "topicArn": "arn:aws:sns:us-east-1:123456789012:dwv-inbound",
                "encoding": "BASE64",
            },
        },
        "content": base64.b64encode(raw).decode(),
    }
    envelope = {
        "Type": "Notification",
        "MessageId": sns_id,
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:dwv-inbound",
        "Message": json.dumps(notification),
        "Timestamp": "2025-08-01T16:45:33.000Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
    }
    headers = {"X-Amz-Sns-Message-Type": "Notification", "X-Amz-Sns-Message-Id": sns_id}
    return WebhookPost(
        "/webhooks/amazon_ses/inbound/", json.dumps(envelope).encode(), "text/plain; charset=UTF-8", headers
    )

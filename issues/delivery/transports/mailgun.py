"""Mailgun's batch API, one call per batch of up to 1,000 readers, without a generic payload builder.

anymail builds a Mailgun call by parsing every address and URL-encoding the
whole form in Python; at a thousand readers per call that is most of a
worker's time. This transport sends the same call (the anymail settings
MAILGUN_API_KEY, MAILGUN_API_URL and MAILGUN_SENDER_DOMAIN, and the same
recipient-variables scheme anymail uses for merge_data, merge_headers and
merge_metadata) as a multipart form, which needs no escaping, over one
kept-alive connection per worker process. Webhooks still go through anymail.

Each reader's copy gets their own links in the body (%recipient.unsubscribe_url%),
their own List-Unsubscribe header and Message-ID, and their ids as custom
data (v:delivery_id ...). A header whose value is the same for every reader
once their own URL is templated out is sent once for the batch.
"""

from __future__ import annotations

import json
import threading
import uuid
from urllib.parse import quote

import requests
from django.conf import settings

from dwvlist.emails import sender_address
from issues.delivery.transports.anymail_batch import bodies_templated
from issues.delivery.transports.base import (
    SENT,
    BatchDeferred,
    CallRefused,
    Envelope,
    Outcome,
    Recipient,
    Transport,
    calls_send,
    http_failure,
)

MAILGUN_MAX_BATCH = 1000  # Mailgun's limit of recipients per call
_VARIABLE = "%recipient.{}%"  # Mailgun's placeholder for a recipient variable
_UNSUBSCRIBE_VAR = _VARIABLE.format("unsubscribe_url")

_local = threading.local()


def _session() -> requests.Session:
    """Return this thread's HTTP session: one kept-alive connection to the provider per worker."""
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    return session


def _multipart(fields: list[tuple[str, str]]) -> tuple[bytes, str]:
    """Return (body, content type) of a multipart/form-data form of text fields."""
    encoded = [(name.encode(), value.encode()) for name, value in fields]
    boundary = uuid.uuid4().hex.encode()
    while any(boundary in value for _, value in encoded):  # astronomically unlikely
        boundary = uuid.uuid4().hex.encode()
    parts = []
    for name, value in encoded:
        parts += [b"--", boundary, b'\r\nContent-Disposition: form-data; name="', name, b'"\r\n\r\n', value, b"\r\n"]
    parts += [b"--", boundary, b"--\r\n"]
    return b"".join(parts), f"multipart/form-data; boundary={boundary.decode()}"


class MailgunBatchTransport(Transport):
    name = "mailgun"
    max_batch = MAILGUN_MAX_BATCH

    def __init__(self) -> None:
        options = settings.ANYMAIL
        self.api_key = options.get("MAILGUN_API_KEY", "")
        self.api_url = options.get("MAILGUN_API_URL", "https://api.mailgun.net/v3").rstrip("/")
        self.sender_domain = options.get("MAILGUN_SENDER_DOMAIN", "")
        self.timeout = float(options.get("REQUESTS_TIMEOUT", 30.0))

    def payload(self, *, envelope: Envelope, recipients: list[Recipient]) -> list[tuple[str, str]]:
        """Return the form fields of one batch call."""
        text, html = bodies_templated(envelope, _VARIABLE)
        fields = [
            ("from", sender_address(envelope.from_name, envelope.from_email)),
            ("subject", envelope.subject),
            ("text", text),
            ("html", html),
        ]
        fields += [("to", r.email) for r in recipients]
        if envelope.reply_to:
            fields.append(("h:Reply-To", envelope.reply_to))
        fields += [(f"h:{name}", value) for name, value in envelope.extra_headers.items()]
        variables: dict[str, dict[str, str]] = {
            r.email: {
                "unsubscribe_url": r.unsubscribe_url,
                "preferences_url": r.preferences_url,
                "message_id": f"<{r.message_id}>",
                "delivery_id": str(r.delivery_id),
                "subscriber_id": str(r.subscriber_id),
            }
            for r in recipients
        }
        fields.append(("h:Message-Id", "%recipient.message_id%"))
        # A list header is sent once with the reader's URL templated out when
        # that makes it the same for everyone, else per reader.
        for name in recipients[0].headers if recipients else ():
            templated = {r.headers.get(name, "").replace(r.unsubscribe_url, _UNSUBSCRIBE_VAR) for r in recipients}
            if len(templated) == 1:
                fields.append((f"h:{name}", templated.pop()))
            else:
                fields.append((f"h:{name}", f"%recipient.h:{name}%"))
                for r in recipients:
                    variables[r.email][f"h:{name}"] = r.headers.get(name, "")
        fields += [
            ("v:issue_id", str(envelope.issue_id)),
            ("v:delivery_id", "%recipient.delivery_id%"),
            ("v:subscriber_id", "%recipient.subscriber_id%"),
            ("recipient-variables", json.dumps(variables, separators=(",", ":"))),
        ]
        return fields

    def send(self, *, envelope: Envelope, recipients: list[Recipient]) -> dict[int, Outcome]:
        # Readers whose lists carry different headers (one list has an
        # archive, another not) go in separate calls, so nobody gets an
        # empty header; usually the whole batch is one call.
        groups: dict[tuple[str, ...], list[Recipient]] = {}
        for recipient in recipients:
            groups.setdefault(tuple(recipient.headers), []).append(recipient)
        return calls_send(list(groups.values()), lambda group: self._send_call(envelope, group))

    def _send_call(self, envelope: Envelope, recipients: list[Recipient]) -> dict[int, Outcome]:
        domain = self.sender_domain or envelope.from_email.rpartition("@")[2]
        body, content_type = _multipart(self.payload(envelope=envelope, recipients=recipients))
        url = f"{self.api_url}/{quote(domain, safe='')}/messages"
        try:
            response = _session().post(
                url,
                data=body,
                headers={"Content-Type": content_type},
                auth=("api", self.api_key),
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            _local.session = None  # a broken connection is not reused
            raise BatchDeferred(f"provider answered nothing: {str(exc)[:300]}") from exc
        status = response.status_code
        deferred = http_failure(status, response, response.text)
        if deferred:
            raise deferred
        try:
            answer = response.json()
            message_id, message = str(answer["id"]), str(answer["message"])
        except (ValueError, KeyError, TypeError):
            message_id, message = "", ""
        if status != 200 or not message.startswith("Queued"):
            # Mailgun refuses the whole call (a 400 names the bad field, not
            # the reader); calls_send splits it to find who.
            raise CallRefused(f"provider refused the call ({status}): {response.text[:500]}")
        # Mailgun gives one id for the whole batch; events about each reader
        # are told apart by recipient.
        accepted = Outcome(SENT, message_id=message_id)  # one id, one outcome, shared by the batch
        return {r.delivery_id: accepted for r in recipients}

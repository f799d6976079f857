"""ESP batch APIs through anymail: one API call per batch, each reader's parts as merge data."""

from __future__ import annotations

import copy
from typing import NamedTuple

from anymail.exceptions import AnymailError, AnymailRecipientsRefused
from anymail.message import AnymailMessage
from django.core.mail import get_connection

from issues.delivery.transports.base import (
    CallRefused,
    Envelope,
    Outcome,
    Recipient,
    Transport,
    calls_send,
    from_header,
    recipient_outcome,
)
from issues.delivery.transports.django_backend import DjangoBackendTransport, anymail_failure
from issues.rendering import PREFERENCES_URL, UNSUBSCRIBE_URL


class BatchEsp(NamedTuple):
    """How one ESP's batch API fills per-reader values into an inline (not stored) body."""

    field_format: str  # the placeholder the ESP replaces with a merge_data value
    max_batch: int  # readers per API call
    esp_extra: dict | None = None  # message options the placeholders depend on
    template_language: bool = False  # the body goes through the ESP's template engine
    ascii_headers: bool = False  # anymail refuses non-ASCII header values for this ESP


# Delimiters of the Brevo and Mailjet template languages: an article containing
# one would be read as template code, and the copy garbled or not sent at all.
_TEMPLATE_SYNTAX = ("{{", "{%", "{#")


def _ascii_list_id(headers: dict[str, str]) -> dict[str, str]:
    """Return the headers with a non-ASCII list name dropped from List-Id (RFC 2919 makes it optional)."""
    list_id = headers.get("List-Id", "")
    if list_id.isascii():
        return headers
    return {**headers, "List-Id": list_id[list_id.rfind("<") :]}


def bodies_templated(envelope: Envelope, field_format: str) -> tuple[str, str]:
    """Return the snapshot's text and HTML with each reader's links as the ESP's placeholders."""
    links = {
        UNSUBSCRIBE_URL: field_format.format("unsubscribe_url"),
        PREFERENCES_URL: field_format.format("preferences_url"),
    }
    text, html = envelope.text, envelope.html
    for mark, placeholder in links.items():
        text, html = text.replace(mark, placeholder), html.replace(mark, placeholder)
    return text, html


class AnymailBatchTransport(Transport):
    """One API call per batch, with merge_data for the links and merge_headers for List-*."""

    def __init__(self, esp: str) -> None:
        self.name = esp
        self.esp = BATCH_ESPS[esp]
        self.field_format, self.max_batch = self.esp.field_format, self.esp.max_batch

    def send(self, *, envelope: Envelope, recipients: list[Recipient]) -> dict[int, Outcome]:
        if self.esp.template_language and any(s in envelope.text or s in envelope.html for s in _TEMPLATE_SYNTAX):
            # One plain message per reader, links filled in here: no template engine reads the article.
            backend = f"anymail.backends.{self.name}.EmailBackend"
            return DjangoBackendTransport(backend, self.name).send(envelope=envelope, recipients=recipients)
        calls = [recipients[start : start + self.max_batch] for start in range(0, len(recipients), self.max_batch)]
        return calls_send(calls, lambda call: self._send_call(envelope, call))

    def _send_call(self, envelope: Envelope, recipients: list[Recipient]) -> dict[int, Outcome]:
        text, html = bodies_templated(envelope, self.field_format)
        message = AnymailMessage(
            subject=envelope.subject,
            body=text,
            from_email=from_header(envelope),
            to=[r.email for r in recipients],
            reply_to=[envelope.reply_to] if envelope.reply_to else None,
            headers=envelope.extra_headers,
            connection=get_connection(f"anymail.backends.{self.name}.EmailBackend"),
        )
        message.attach_alternative(html, "text/html")
        message.merge_data = {
            r.email: {"unsubscribe_url": r.unsubscribe_url, "preferences_url": r.preferences_url} for r in recipients
        }
        message.merge_headers = {
            r.email: {
                **(_ascii_list_id(r.headers) if self.esp.ascii_headers else r.headers),
                "Message-ID": f"<{r.message_id}>",
            }
            for r in recipients
        }
        message.merge_metadata = {r.email: r.metadata for r in recipients}
        if self.esp.esp_extra:
            # A copy: anymail's SendGrid backend pops the keys it understands.
            message.esp_extra = copy.deepcopy(self.esp.esp_extra)
        try:
            message.send()
        except AnymailRecipientsRefused:
            message_status = message.anymail_status
        except AnymailError as exc:
            deferred = anymail_failure(exc)
            if deferred:
                raise deferred from exc
            raise CallRefused(str(exc)) from exc
        message_status = message.anymail_status
        statuses = message_status.recipients or {}
        return {r.delivery_id: recipient_outcome(statuses.get(r.email), default_id=r.message_id) for r in recipients}


# ESPs whose batch API takes per-recipient substitutions without a stored
# template: the placeholder syntax each expects, and its recipients-per-call limit.
# (Mailgun has its own transport, mailgun.py.)
BATCH_ESPS: dict[str, BatchEsp] = {
    # v3 mail/send: one personalization per reader; legacy substitutions are a
    # plain search-and-replace in subject and content, keyed by merge_field_format.
    "sendgrid": BatchEsp("-{}-", 1000, esp_extra={"merge_field_format": "-{}-"}),
    # smtp/email with messageVersions: each version's params are rendered by
    # Brevo's template language; 1000 versions per call.
    "brevo": BatchEsp("{{{{ params.{} }}}}", 1000, template_language=True, ascii_headers=True),
    # v3.1 send: one Messages entry per reader, its Variables rendered only with
    # TemplateLanguage on; 50 messages per call.
    "mailjet": BatchEsp(
        "{{{{var:{}}}}}", 50, esp_extra={"Globals": {"TemplateLanguage": True}}, template_language=True
    ),
    # Not amazon_ses: anymail refuses merge_data and merge_headers without an SES stored template.
}

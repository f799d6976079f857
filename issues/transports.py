"""The ways an issue leaves the building: SMTP, ESP batch APIs, or one call per message.

Each transport takes a batch of readers and reports one Outcome per
reader. A failure of the whole batch (connection refused, timeout, an ESP
answering 429 or 5xx) raises BatchDeferred, and every reader in it is
retried later; nothing is guessed.
"""

from __future__ import annotations

import copy
import smtplib
import ssl
from dataclasses import dataclass, field
from typing import NamedTuple

from anymail.exceptions import AnymailError, AnymailRecipientsRefused
from anymail.message import AnymailMessage
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection

from issues.mime import MessageTemplate, address_encode, header_encode
from issues.ratelimit import provider_pause
from issues.rendering import PREFERENCES_URL, UNSUBSCRIBE_URL, rendered_personalize

SENT = "sent"
TRANSIENT = "transient"
PERMANENT = "permanent"


@dataclass
class Recipient:
    delivery_id: int
    subscriber_id: int
    email: str
    message_id: str
    unsubscribe_url: str
    preferences_url: str
    headers: dict[str, str]  # List-* headers for this reader's list
    metadata: dict[str, str]


@dataclass
class Envelope:
    """What is the same for every reader of one issue."""

    issue_id: int
    subject: str
    html: str
    text: str
    from_email: str
    from_name: str
    reply_to: str
    extra_headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Outcome:
    status: str
    message_id: str = ""
    error: str = ""
    suppress: bool = False


class BatchDeferred(Exception):
    """The whole batch could not be sent now; retry it later."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class CallRefused(Exception):
    """The provider refused one API call as a whole (a 4xx about something in it); sent again, it is refused again."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class Transport:
    name = "base"
    max_batch = 500

    def send(self, *, envelope: Envelope, recipients: list[Recipient]) -> dict[int, Outcome]:
        raise NotImplementedError


def _personal_parts(envelope: Envelope, recipient: Recipient) -> tuple[str, str]:
    links = {"unsubscribe_url": recipient.unsubscribe_url, "preferences_url": recipient.preferences_url}
    return rendered_personalize(envelope.text, **links), rendered_personalize(envelope.html, **links)


# --- SMTP --------------------------------------------------------------------


def _smtp_code_outcome(code: int, message: bytes | str) -> Outcome:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    error = f"SMTP {code} {text}"[:1000]
    if 400 <= code < 500:
        return Outcome(TRANSIENT, error=error)
    # 5.1.x is "bad destination mailbox": the address does not exist.
    suppress = code == 551 or " 5.1." in f" {text}" or text.startswith("5.1.")
    return Outcome(PERMANENT, error=error, suppress=suppress)


class SmtpTransport(Transport):
    """One SMTP connection per batch; each reader's copy assembled from the snapshot."""

    name = "smtp"
    max_batch = 500

    def _connect(self) -> smtplib.SMTP:
        timeout = settings.EMAIL_TIMEOUT
        if settings.EMAIL_USE_SSL:
            conn: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.EMAIL_HOST, settings.EMAIL_PORT, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            conn = smtplib.SMTP(settings.EMAIL_HOST, settings.EMAIL_PORT, timeout=timeout)
        conn.ehlo_or_helo_if_needed()
        if settings.EMAIL_USE_TLS:
            conn.starttls(context=ssl.create_default_context())
            conn.ehlo()
        if settings.EMAIL_HOST_USER:
            conn.login(settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD)
        return conn

    def send(self, *, envelope: Envelope, recipients: list[Recipient]) -> dict[int, Outcome]:
        try:
            conn = self._connect()
        except (OSError, smtplib.SMTPException) as exc:
            raise BatchDeferred(f"SMTP connection failed: {exc}") from exc
        template = MessageTemplate(
            from_header=_from_header(envelope),
            subject_header=_subject_header(envelope),
            reply_to=envelope.reply_to,
            extra_headers=envelope.extra_headers,
        )
        outcomes: dict[int, Outcome] = {}
        pipelining = conn.has_extn("pipelining")
        try:
            for index, recipient in enumerate(recipients):
                text, html = _personal_parts(envelope, recipient)
                raw = template.render(
                    to=recipient.email,
                    message_id=recipient.message_id,
                    text=text,
                    html=html,
                    headers=recipient.headers,
                )
                try:
                    code, message = _smtp_transaction(conn, envelope.from_email, recipient.email, raw, pipelining)
                    if code == 250:
                        outcomes[recipient.delivery_id] = Outcome(SENT, message_id=recipient.message_id)
                    else:
                        outcomes[recipient.delivery_id] = _smtp_code_outcome(code, message)
                        _smtp_reset(conn)
                except (TimeoutError, smtplib.SMTPServerDisconnected, OSError) as exc:
                    # The connection is gone: this reader and the rest of the batch wait for a retry.
                    for rest in recipients[index:]:
                        outcomes[rest.delivery_id] = Outcome(TRANSIENT, error=f"SMTP connection lost: {exc}"[:1000])
                    break
        finally:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                conn.close()
        return outcomes


def _smtp_transaction(
    conn: smtplib.SMTP, sender: str, recipient: str, raw: bytes, pipelining: bool
) -> tuple[int, bytes]:
    """Send one message to one recipient; return the first non-success reply, or (250, ...).

    With PIPELINING (RFC 2920) MAIL, RCPT and DATA go out in one write. The
    message is sent as it is: its lines are base64 or header lines, none
    starts with a dot, so smtplib's per-message dot-stuffing pass is skipped.
    """
    commands = [f"MAIL FROM:<{sender}>\r\n", f"RCPT TO:<{recipient}>\r\n", "DATA\r\n"]
    expected = [(250,), (250, 251), (354,)]
    if pipelining:
        conn.send("".join(commands))
        replies = [conn.getreply() for _ in commands]
    else:
        replies = []
        for command, ok in zip(commands, expected, strict=True):
            conn.send(command)
            replies.append(conn.getreply())
            if replies[-1][0] not in ok:
                break
    for (code, message), ok in zip(replies, expected, strict=False):
        if code not in ok:
            if len(replies) == 3 and replies[2][0] == 354:
                # The server accepted DATA although a recipient was refused:
                # end the empty message so the connection stays usable.
                conn.send(b".\r\n")
                conn.getreply()
            return code, message
    conn.send(raw + b".\r\n")
    return conn.getreply()


def _smtp_reset(conn: smtplib.SMTP) -> None:
    try:
        conn.rset()
    except (smtplib.SMTPException, OSError):
        pass


def _from_header(envelope: Envelope) -> str:
    return address_encode(envelope.from_name, envelope.from_email)


def _subject_header(envelope: Envelope) -> str:
    return header_encode(envelope.subject)


# --- Anymail ---------------------------------------------------------------------


class BatchEsp(NamedTuple):
    """How one ESP's batch API fills per-reader values into an inline (not stored) body."""

    field_format: str  # the placeholder the ESP replaces with a merge_data value
    max_batch: int  # readers per API call
    esp_extra: dict | None = None  # message options the placeholders depend on
    template_language: bool = False  # the body goes through the ESP's template engine
    ascii_headers: bool = False  # anymail refuses non-ASCII header values for this ESP


# ESPs whose batch API takes per-recipient substitutions without a stored
# template: the placeholder syntax each expects, and its recipients-per-call limit.
# (Mailgun has its own transport, issues/mailgun.py.)
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

# Delimiters of the Brevo and Mailjet template languages: an article containing
# one would be read as template code, and the copy garbled or not sent at all.
_TEMPLATE_SYNTAX = ("{{", "{%", "{#")


def http_failure(status: int | None, response, detail: str) -> BatchDeferred | None:
    """Return BatchDeferred for a provider answer worth retrying, None for a refusal or a success.

    Retried: no answer, 429 (after its Retry-After), 5xx, and refused
    credentials (401, 403), which an operator can fix without losing the send.
    """
    if status is None or status == 429 or status >= 500 or status in (401, 403):
        retry_after = None
        if status == 429 and response is not None:
            try:
                retry_after = float(response.headers.get("Retry-After", "") or 30)
            except ValueError:
                retry_after = 30.0
        return BatchDeferred(f"provider answered {status or 'nothing'}: {detail[:300]}", retry_after=retry_after)
    return None


def _anymail_failure(exc: AnymailError) -> BatchDeferred | None:
    """Return BatchDeferred for retryable API failures, None for permanent ones."""
    return http_failure(getattr(exc, "status_code", None), getattr(exc, "response", None), str(exc))


def _recipient_outcome(status, *, default_id: str) -> Outcome:
    state = getattr(status, "status", None) or "unknown"
    message_id = getattr(status, "message_id", None) or default_id
    if state in ("sent", "queued", "unknown"):
        return Outcome(SENT, message_id=str(message_id))
    if state in ("invalid", "rejected"):
        return Outcome(PERMANENT, error=f"provider {state} the address", suppress=True)
    return Outcome(TRANSIENT, error=f"provider reported {state}")


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


# Readers refused one by one, with nothing of the batch accepted, after which
# a refused call is taken to be refused for what all its readers share (the
# sender, the size), not for an address: the rest fail without more calls.
REFUSED_ALONE_LIMIT = 3


def calls_send(calls: list[list[Recipient]], send_call) -> dict[int, Outcome]:
    """Send a batch as several API calls; return every reader's outcome.

    If a call fails after earlier ones were accepted, the failure is not
    raised for the whole batch: only the readers not yet sent wait for a retry.
    A call the provider refuses (one malformed address fails a whole call)
    is split in halves and each sent again, so only the readers refused on
    their own fail: about two calls per level, log2(batch) levels.
    """
    outcomes: dict[int, Outcome] = {}
    pending = list(calls)
    accepted = refused_alone = 0
    while pending:
        call = pending.pop(0)
        try:
            answered = send_call(call)
        except BatchDeferred as exc:
            if not outcomes:
                raise
            if exc.retry_after:
                provider_pause(seconds=exc.retry_after)  # a 429 holds every worker, as for a whole batch
            for recipient in (r for rest in (call, *pending) for r in rest):
                outcomes.setdefault(recipient.delivery_id, Outcome(TRANSIENT, error=exc.reason[:1000]))
            break
        except CallRefused as exc:
            if len(call) > 1 and (accepted or refused_alone < REFUSED_ALONE_LIMIT):
                half = len(call) // 2
                pending[:0] = [call[:half], call[half:]]
                continue
            refused_alone += len(call) == 1
            rest = (call, *pending) if not accepted and refused_alone >= REFUSED_ALONE_LIMIT else (call,)
            for recipient in (r for part in rest for r in part):
                outcomes[recipient.delivery_id] = Outcome(PERMANENT, error=exc.error[:1000])
            if len(rest) > 1:
                break
            continue
        accepted += 1
        outcomes.update(answered)
    return outcomes


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
            from_email=_from_header(envelope),
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
            deferred = _anymail_failure(exc)
            if deferred:
                raise deferred from exc
            raise CallRefused(str(exc)) from exc
        message_status = message.anymail_status
        statuses = message_status.recipients or {}
        return {r.delivery_id: _recipient_outcome(statuses.get(r.email), default_id=r.message_id) for r in recipients}


class DjangoBackendTransport(Transport):
    """One message per reader through any Django mail backend, over one kept-open connection.

    Used for ESPs without a suitable batch API (Postmark and the rest), the
    outbox and the console.
    """

    max_batch = 200

    def __init__(self, backend: str, name: str) -> None:
        self.backend = backend
        self.name = name

    def send(self, *, envelope: Envelope, recipients: list[Recipient]) -> dict[int, Outcome]:
        connection = get_connection(self.backend)
        try:
            connection.open()
        except Exception as exc:  # backends raise their own types for a refused connection
            raise BatchDeferred(f"could not open the mail connection: {exc}") from exc
        is_anymail = self.backend.startswith("anymail.")
        outcomes: dict[int, Outcome] = {}
        try:
            for recipient in recipients:
                text, html = _personal_parts(envelope, recipient)
                message_class = AnymailMessage if is_anymail else EmailMultiAlternatives
                message = message_class(
                    subject=envelope.subject,
                    body=text,
                    from_email=_from_header(envelope),
                    to=[recipient.email],
                    reply_to=[envelope.reply_to] if envelope.reply_to else None,
                    headers={**envelope.extra_headers, **recipient.headers, "Message-ID": f"<{recipient.message_id}>"},
                    connection=connection,
                )
                message.attach_alternative(html, "text/html")
                if is_anymail:
                    message.metadata = recipient.metadata
                try:
                    message.send()
                except AnymailRecipientsRefused:
                    pass
                except AnymailError as exc:
                    deferred = _anymail_failure(exc)
                    if deferred and deferred.retry_after:
                        raise deferred from exc
                    if deferred:
                        outcomes[recipient.delivery_id] = Outcome(TRANSIENT, error=deferred.reason)
                    else:
                        outcomes[recipient.delivery_id] = Outcome(PERMANENT, error=str(exc)[:1000])
                    continue
                except (smtplib.SMTPException, OSError) as exc:
                    outcomes[recipient.delivery_id] = Outcome(TRANSIENT, error=str(exc)[:1000])
                    continue
                if is_anymail:
                    status = (message.anymail_status.recipients or {}).get(recipient.email)
                    outcomes[recipient.delivery_id] = _recipient_outcome(status, default_id=recipient.message_id)
                else:
                    outcomes[recipient.delivery_id] = Outcome(SENT, message_id=recipient.message_id)
        finally:
            try:
                connection.close()
            except Exception:  # noqa: S110 (closing a broken connection must not lose the outcomes)
                pass
        return outcomes


def transport_for_settings() -> Transport:
    """Return the transport that EMAIL_TRANSPORT names."""
    kind = settings.EMAIL_TRANSPORT
    if kind == "smtp":
        return SmtpTransport()
    if kind == "mailgun":
        from issues.mailgun import MailgunBatchTransport

        return MailgunBatchTransport()
    if kind in BATCH_ESPS:
        return AnymailBatchTransport(kind)
    return DjangoBackendTransport(settings.EMAIL_BACKEND, kind)

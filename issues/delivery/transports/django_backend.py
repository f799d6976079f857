"""Any Django email backend, one message per reader (the outbox, console, or an ESP without a batch API)."""

from __future__ import annotations

import smtplib

from anymail.exceptions import AnymailError, AnymailRecipientsRefused
from anymail.message import AnymailMessage
from django.core.mail import get_connection

from dwvlist.mail import PreparedMessage
from issues.delivery.mime import MessageTemplate, address_header, header_line
from issues.delivery.transports.base import (
    PERMANENT,
    SENT,
    TRANSIENT,
    BatchDeferred,
    Envelope,
    Outcome,
    Recipient,
    Transport,
    build_failure,
    from_header,
    http_failure,
    personal_parts,
    recipient_outcome,
    to_header,
)


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
                try:
                    message = self._message(envelope, recipient, connection, is_anymail)
                except Exception as exc:  # anything wrong with this reader's copy fails this reader alone
                    outcomes[recipient.delivery_id] = build_failure(exc)
                    continue
                try:
                    message.send()
                except AnymailRecipientsRefused:
                    pass
                except AnymailError as exc:
                    deferred = anymail_failure(exc)
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
                except (ValueError, UnicodeError) as exc:  # the backend could not encode this reader's copy
                    outcomes[recipient.delivery_id] = build_failure(exc)
                    continue
                if is_anymail:
                    status = (message.anymail_status.recipients or {}).get(recipient.email)
                    outcomes[recipient.delivery_id] = recipient_outcome(status, default_id=recipient.message_id)
                else:
                    outcomes[recipient.delivery_id] = Outcome(SENT, message_id=recipient.message_id)
        finally:
            try:
                connection.close()
            except Exception:  # noqa: S110 (closing a broken connection must not lose the outcomes)
                pass
        return outcomes

    def _message(self, envelope: Envelope, recipient: Recipient, connection, is_anymail: bool):
        """Return the reader's copy as a Django message.

        An ESP's API takes the values as Unicode and encodes them itself;
        Django's own backends (the outbox, the console) get the very bytes
        the SMTP path would send, since Django's encoder makes encoded words
        longer than RFC 2047 allows and cannot write a UTF-8 local part.
        """
        text, html = personal_parts(envelope, recipient)
        headers = {**envelope.extra_headers, **recipient.headers}
        message_class = AnymailMessage if is_anymail else PreparedMessage
        message = message_class(
            subject=envelope.subject,
            body=text,
            from_email=from_header(envelope),
            to=[to_header(recipient)],
            reply_to=[envelope.reply_to] if envelope.reply_to else None,
            headers={**headers, "Message-ID": f"<{recipient.message_id}>"},
            connection=connection,
        )
        message.attach_alternative(html, "text/html")
        if is_anymail:
            message.metadata = recipient.metadata
        else:
            message.raw = _template(envelope).render(
                to_name=recipient.name,
                to=recipient.email,
                message_id=recipient.message_id,
                text=text,
                html=html,
                headers=recipient.headers,
                eightbit=True,
            )
        return message


def _template(envelope: Envelope) -> MessageTemplate:
    return MessageTemplate(
        from_line=address_header("From", envelope.from_name, envelope.from_email),
        subject_line=header_line("Subject", envelope.subject),
        reply_to_line=address_header("Reply-To", "", envelope.reply_to) if envelope.reply_to else "",
        extra_headers=envelope.extra_headers,
    )


def anymail_failure(exc: AnymailError) -> BatchDeferred | None:
    """Return BatchDeferred for retryable API failures, None for permanent ones."""
    return http_failure(getattr(exc, "status_code", None), getattr(exc, "response", None), str(exc))

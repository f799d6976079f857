"""Any Django email backend, one message per reader (the outbox, console, or an ESP without a batch API)."""

from __future__ import annotations

import smtplib

from anymail.exceptions import AnymailError, AnymailRecipientsRefused
from anymail.message import AnymailMessage
from django.core.mail import EmailMultiAlternatives, get_connection

from issues.delivery.transports.base import (
    PERMANENT,
    SENT,
    TRANSIENT,
    BatchDeferred,
    Envelope,
    Outcome,
    Recipient,
    Transport,
    from_header,
    http_failure,
    personal_parts,
    recipient_outcome,
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
                text, html = personal_parts(envelope, recipient)
                message_class = AnymailMessage if is_anymail else EmailMultiAlternatives
                message = message_class(
                    subject=envelope.subject,
                    body=text,
                    from_email=from_header(envelope),
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


def anymail_failure(exc: AnymailError) -> BatchDeferred | None:
    """Return BatchDeferred for retryable API failures, None for permanent ones."""
    return http_failure(getattr(exc, "status_code", None), getattr(exc, "response", None), str(exc))

"""SMTP: one connection per batch, one transaction per reader."""

from __future__ import annotations

import smtplib
import ssl

from django.conf import settings

from issues.delivery.mime import MessageTemplate
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
    personal_parts,
    subject_header,
)


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
            from_header=from_header(envelope),
            subject_header=subject_header(envelope),
            reply_to=envelope.reply_to,
            extra_headers=envelope.extra_headers,
        )
        outcomes: dict[int, Outcome] = {}
        pipelining = conn.has_extn("pipelining")
        try:
            for index, recipient in enumerate(recipients):
                text, html = personal_parts(envelope, recipient)
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

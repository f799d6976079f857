"""SMTP: one connection per batch, one transaction per reader."""

from __future__ import annotations

import smtplib
import socket
import ssl
import struct

from django.conf import settings

from dwvlist.dkim import dkim_signer
from issues.delivery.mime import (
    AddressError,
    MessageTemplate,
    address_header,
    address_needs_smtputf8,
    address_wire,
    dot_stuff,
    header_line,
    message_join,
)
from issues.delivery.tracking import html_marked, html_tracked
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
    personal_parts,
)
from issues.delivery.transports.dkim import DkimBatch

NO_SMTPUTF8 = (
    "the address has non-ASCII characters before the @, and the mail server (EMAIL_HOST) "
    "does not accept such addresses (it does not offer SMTPUTF8); it cannot be sent this way"
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
            template = MessageTemplate(
                from_line=address_header("From", envelope.from_name, envelope.from_email),
                subject_line=header_line("Subject", envelope.subject),
                reply_to_line=address_header("Reply-To", "", envelope.reply_to) if envelope.reply_to else "",
                extra_headers=envelope.extra_headers,
            )
            sender = address_wire(envelope.from_email)
        except AddressError as exc:
            # The list's own address: nobody of this batch can be sent to until an admin fixes it.
            return {r.delivery_id: Outcome(PERMANENT, error=f"the list's address: {exc}") for r in recipients}
        try:
            conn = self._connect()
        except (OSError, smtplib.SMTPException) as exc:
            refused = isinstance(exc, smtplib.SMTPAuthenticationError)
            raise BatchDeferred(f"SMTP connection failed: {exc}", credentials_refused=refused) from exc
        outcomes: dict[int, Outcome] = {}
        pipelining = conn.has_extn("pipelining")
        eightbit, smtputf8 = conn.has_extn("8bitmime"), conn.has_extn("smtputf8")
        # Until the batch ends cleanly, closing the connection resets it. After a
        # timeout (a network partition, say) a message body may still sit
        # unacknowledged in the socket's send queue; a graceful close, which
        # smtplib does itself on a timeout, would let the kernel deliver it
        # whenever the network comes back, after the reaper has handed that
        # reader to another worker: a copy sent twice, late. A reset discards it.
        _linger(conn, abort=True)
        clean = True  # the connection is between transactions, and answering
        marked = html_marked(envelope.html) if any(r.tracking for r in recipients) else ""
        signer = dkim_signer()
        signing = DkimBatch(signer) if signer is not None else None
        try:
            for index, recipient in enumerate(recipients):
                utf8 = address_needs_smtputf8(recipient.email)
                if utf8 and not smtputf8:
                    outcomes[recipient.delivery_id] = Outcome(PERMANENT, error=NO_SMTPUTF8)
                    continue
                try:
                    raw = copy_build(
                        template=template,
                        envelope=envelope,
                        recipient=recipient,
                        marked=marked,
                        eightbit=eightbit,
                        signing=signing,
                    )
                    # VERP: the copy's own envelope sender, naming its delivery, so a bounce finds it.
                    envelope_sender = address_wire(recipient.envelope_sender) if recipient.envelope_sender else sender
                    mail_options = (" BODY=8BITMIME" if eightbit else "") + (" SMTPUTF8" if utf8 else "")
                    rcpt = address_wire(recipient.email)
                    commands = f"MAIL FROM:<{envelope_sender}>{mail_options}\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n".encode()
                except Exception as exc:  # anything wrong with this reader's copy fails this reader alone
                    outcomes[recipient.delivery_id] = build_failure(exc)
                    continue
                try:
                    code, message = _smtp_transaction(conn, commands, raw, pipelining)
                    if code == 250:
                        outcomes[recipient.delivery_id] = Outcome(SENT, message_id=recipient.message_id)
                    else:
                        outcomes[recipient.delivery_id] = _smtp_code_outcome(code, message)
                        _smtp_reset(conn)
                except (TimeoutError, smtplib.SMTPServerDisconnected, OSError) as exc:
                    # The connection is gone: this reader and the rest of the batch wait for a retry.
                    clean = False
                    for rest in recipients[index:]:
                        outcomes[rest.delivery_id] = Outcome(TRANSIENT, error=f"SMTP connection lost: {exc}"[:1000])
                    break
        except BaseException:
            clean = False
            raise
        finally:
            if clean:
                _linger(conn, abort=False)
                try:
                    conn.quit()
                except (smtplib.SMTPException, OSError):
                    conn.close()
            else:
                conn.close()
        return outcomes


def copy_build(
    *,
    template: MessageTemplate,
    envelope: Envelope,
    recipient: Recipient,
    marked: str,
    eightbit: bool,
    signing: DkimBatch | None,
) -> bytes:
    """Return one reader's copy as it goes on the wire, DKIM-signed when `signing` is given.

    `marked` is the envelope's HTML marked for tracking ("" when nobody of
    the batch is tracked).
    """
    if recipient.tracking and marked:
        text, html = personal_parts(envelope, recipient, html=marked)
        html = html_tracked(html, delivery_id=recipient.delivery_id)
    else:
        text, html = personal_parts(envelope, recipient)
    fields, body = template.render_fields(
        to_name=recipient.name,
        to=recipient.email,
        message_id=recipient.message_id,
        text=text,
        html=html,
        headers=recipient.headers,
        eightbit=eightbit,
    )
    return message_join(fields, body) if signing is None else signing.sign(fields, body)


def _linger(conn: smtplib.SMTP, *, abort: bool) -> None:
    """Make closing the connection reset it (abort) or end it gracefully."""
    sock = conn.sock
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1 if abort else 0, 0))
        except OSError:
            pass


def _smtp_transaction(conn: smtplib.SMTP, commands: bytes, raw: bytes, pipelining: bool) -> tuple[int, bytes]:
    """Send one message to one recipient; return the first non-success reply, or (250, ...).

    `commands` are the MAIL, RCPT and DATA lines, UTF-8 encoded (an SMTPUTF8
    address is UTF-8 on the wire). With PIPELINING (RFC 2920) they go out in
    one write.
    """
    lines = commands.split(b"\r\n")[:3]
    expected = [(250,), (250, 251), (354,)]
    if pipelining:
        conn.send(commands)
        replies = [conn.getreply() for _ in lines]
    else:
        replies = []
        for command, ok in zip(lines, expected, strict=True):
            conn.send(command + b"\r\n")
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
    conn.send(dot_stuff(raw) + b".\r\n")
    return conn.getreply()


def _smtp_reset(conn: smtplib.SMTP) -> None:
    try:
        conn.rset()
    except (smtplib.SMTPException, OSError):
        pass

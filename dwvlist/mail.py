"""Django mail backends of our own, and a message whose bytes our encoder built.

OutboxBackend, the default transport for development and the demo, writes
every message that would have left the machine to its own .eml file in
OUTBOX_DIR, readable with any mail client, and tests read them back.
SmtpBackend is Django's, with SMTPUTF8 for a UTF-8 local part and IDNA
domains in the envelope, and a DKIM signature when DKIM_* is set.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.smtp import EmailBackend as DjangoSmtpBackend
from django.utils import timezone

from dwvlist.dkim import dkim_signer
from dwvlist.mailwire import address_needs_smtputf8, address_wire

# A line end that is not CRLF: smtplib sends bytes as they are, and a relay that mends them breaks the signature.
_BARE_EOL = re.compile(rb"\r(?!\n)|(?<!\r)\n")


def message_wire(raw: bytes) -> bytes:
    """Return a message's bytes as they go on the wire: CRLF line ends, ending in one.

    smtplib adds a final CRLF when there is none; done here, a DKIM
    signature covers exactly the bytes sent.
    """
    raw = _BARE_EOL.sub(b"\r\n", raw)
    return raw if raw.endswith(b"\r\n") else raw + b"\r\n"


class _RawMessage:
    """What Django's backends ask of a message: its bytes."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def as_bytes(self, unixfrom: bool = False, linesep: str = "\r\n", **_) -> bytes:
        return self.raw if linesep == "\r\n" else self.raw.replace(b"\r\n", linesep.encode())

    def as_string(self, unixfrom: bool = False, linesep: str = "\n", **_) -> str:
        return self.as_bytes(linesep=linesep).decode("utf-8")

    def get_charset(self):
        return None  # the console backend asks; the bytes are UTF-8 where they are not ASCII


class PreparedMessage(EmailMultiAlternatives):
    """A Django message whose bytes were built by our own encoder (dwvlist.mailwire).

    Django's encoder makes encoded words longer than RFC 2047 allows and
    cannot write a UTF-8 local part; its backends (the outbox, the console,
    SmtpBackend) send these bytes as they are. `raw` must be set.
    """

    raw: bytes = b""

    def message(self, **kwargs):
        return _RawMessage(self.raw)


class SmtpBackend(DjangoSmtpBackend):
    """Django's SMTP backend, with IDNA domains in the envelope and SMTPUTF8 for a UTF-8 local part.

    Every message is DKIM-signed when DKIM_* is set (dwvlist.dkim), on the
    bytes handed to the relay.
    """

    def _send(self, email_message) -> bool:
        from email.utils import parseaddr

        addresses = [parseaddr(a)[1] or a for a in email_message.recipients()]
        if not addresses:
            return False
        sender = address_wire(parseaddr(email_message.from_email)[1] or email_message.from_email)
        options = ["SMTPUTF8"] if any(address_needs_smtputf8(a) for a in addresses) else []
        raw = message_wire(email_message.message().as_bytes(linesep="\r\n"))
        signer = dkim_signer()
        if signer is not None:
            raw = signer.sign(raw)
        try:
            # smtplib refuses SMTPUTF8 (SMTPNotSupportedError) when the relay does not offer it.
            self.connection.sendmail(sender, [address_wire(a) for a in addresses], raw, mail_options=options)
        except Exception:
            if not self.fail_silently:
                raise
            return False
        return True


class OutboxBackend(BaseEmailBackend):
    def send_messages(self, email_messages) -> int:
        outbox = Path(settings.OUTBOX_DIR)
        outbox.mkdir(parents=True, exist_ok=True)
        sent = 0
        for message in email_messages:
            stamp = timezone.now().strftime("%Y%m%dT%H%M%S%f")
            final = outbox / f"{stamp}-{uuid.uuid4().hex[:12]}.eml"
            partial = final.with_suffix(".part")
            partial.write_bytes(message.message().as_bytes(linesep="\r\n"))
            # Rename so a reader never sees half a message.
            os.replace(partial, final)
            sent += 1
        return sent

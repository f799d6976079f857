"""An email backend that writes each message to its own .eml file.

The default transport for development and the demo: every message that
would have left the machine lands in OUTBOX_DIR, readable with any mail
client, and tests can read them back.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone


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

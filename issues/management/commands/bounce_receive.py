"""Read one returned mail on standard input: the pipe an MTA delivers the bounce address to.

Exit codes as sysexits.h, which MTAs understand: 0 done (recorded, or kept
for an admin), 75 (EX_TEMPFAIL) try again later (the database or Redis did
not answer), 65 (EX_DATAERR) nothing on standard input.
"""

from __future__ import annotations

import logging
import os
import sys

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

EX_DATAERR = 65
EX_TEMPFAIL = 75

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Record one returned mail (a DSN, a complaint, an unsubscribe) read from standard input."

    def add_arguments(self, parser):
        parser.add_argument(
            "--recipient",
            default="",
            help="The envelope recipient (the VERP address), e.g. Postfix's ${original_recipient}. "
            "Default: $ORIGINAL_RECIPIENT or $RECIPIENT as Postfix's local delivery sets them.",
        )

    def handle(self, *args, recipient: str = "", **options):
        from django.conf import settings

        from issues.feedback.bounces.intake import bounce_receive

        raw = sys.stdin.buffer.read(settings.BOUNCE_MESSAGE_MAX_BYTES + 1)
        if not raw.strip():
            raise CommandError("no message on standard input", returncode=EX_DATAERR)
        if len(raw) > settings.BOUNCE_MESSAGE_MAX_BYTES:
            raw += sys.stdin.buffer.read()  # kept whole for parsing; stored cut at the limit
        recipient = recipient or os.environ.get("ORIGINAL_RECIPIENT", "") or os.environ.get("RECIPIENT", "")
        try:
            result = bounce_receive(raw=raw, source="pipe", envelope_recipient=recipient[:320])
        except (DatabaseError, OSError) as exc:
            logger.exception("Returned mail not recorded; the MTA will try again")
            raise CommandError(f"try again later: {exc}", returncode=EX_TEMPFAIL) from exc
        self.stdout.write(
            f"{result.form}: {result.recorded} recorded, {result.replayed} already recorded, "
            f"{result.unattributed} not matched to a delivery\n"
        )

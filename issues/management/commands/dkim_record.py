"""Print the DNS TXT record that publishes the DKIM key the SMTP path signs with."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Print the DKIM TXT record to publish for DKIM_SELECTOR._domainkey.DKIM_DOMAIN."

    def handle(self, *args, **options):
        from dwvlist.dkim import dkim_signer

        try:
            signer = dkim_signer()
        except (ValueError, TypeError) as exc:
            raise CommandError(f"DKIM_PRIVATE_KEY could not be read: {exc}") from exc
        if signer is None:
            raise CommandError("DKIM signing is off: set DKIM_DOMAIN, DKIM_SELECTOR and DKIM_PRIVATE_KEY (or _FILE)")
        self.stdout.write(signer.dns_record() + "\n")

"""DKIM keys made by openssl, and a DNS answer for dkimpy: the record `manage.py dkim_record` prints."""

from __future__ import annotations

import io
import re
import subprocess

from django.core.management import call_command


def dkim_key(kind: str) -> str:
    """Return a new PEM private key, "rsa" (2048 bits) or "ed25519"."""
    command = ["openssl", "genpkey", "-algorithm", "ED25519"]
    if kind == "rsa":
        command = ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def dkim_record(settings) -> str:
    """Return the TXT record's value `manage.py dkim_record` prints for the DKIM_* settings."""
    out = io.StringIO()
    call_command("dkim_record", stdout=out)
    line = out.getvalue().strip()
    assert line.startswith(f"{settings.DKIM_SELECTOR}._domainkey.{settings.DKIM_DOMAIN}. IN TXT (")
    return "".join(re.findall(r'"([^"]*)"', line))


def dkim_dns(record: str, settings):
    """Return (dnsfunc for dkim.verify answering with `record`, the list of names it was asked)."""
    asked = []

    def dnsfunc(name, timeout=5):
        asked.append(name)
        expected = f"{settings.DKIM_SELECTOR}._domainkey.{settings.DKIM_DOMAIN}.".encode()
        return record.encode() if name == expected else None

    return dnsfunc, asked

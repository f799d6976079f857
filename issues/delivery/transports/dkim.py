"""DKIM signatures (RFC 6376) for the mail the SMTP path sends.

Why not dkimpy's own signer: its RSA is pure Python (13 ms a message here)
and its canonicalisation a regex pass over every body line (another 3 ms),
thirty times the whole cost of building a copy. Our copies are regular
(one header a line, CRLF everywhere, a body that already ends in one CRLF),
so the canonical forms are cheap to produce directly, and the signature is
made by OpenSSL through `cryptography`. dkimpy, the reference, verifies
these signatures in the tests, against the record `manage.py dkim_record`
prints.

c=relaxed/simple: relaxed headers survive relays that refold them; the
body is base64 in short lines that nobody rewrites. RSA keys sign
rsa-sha256, Ed25519 keys ed25519-sha256 (RFC 8463).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from django.conf import settings

# RFC 8058 asks that List-Unsubscribe and List-Unsubscribe-Post be signed.
SIGNED_HEADERS = (
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "mime-version",
    "content-type",
)
_WSP = re.compile(rb"[ \t]+")


def _relaxed(name: bytes, value: bytes) -> bytes:
    value = _WSP.sub(b" ", value.replace(b"\r\n", b"")).strip(b" ")
    return name.strip().lower() + b":" + value


def _headers_split(head: bytes) -> list[tuple[bytes, bytes]]:
    """Return (name, value) per header field, continuation lines kept in the value."""
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + b"\r\n" + line)
        elif b":" in line:
            name, _, value = line.partition(b":")
            fields.append((name, value))
    return fields


def public_key_record(key) -> tuple[str, str]:
    """Return (k=, p=) of the DNS record for a private key."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return "ed25519", base64.b64encode(raw).decode()
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "rsa", base64.b64encode(der).decode()


class DkimSigner:
    """Signs raw messages for one domain and selector with one key."""

    def __init__(self, *, domain: str, selector: str, private_key_pem: str) -> None:
        key = serialization.load_pem_private_key(private_key_pem.strip().encode(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
            raise ValueError("DKIM keys must be RSA or Ed25519")
        if isinstance(key, rsa.RSAPrivateKey) and key.key_size < 1024:
            raise ValueError("an RSA DKIM key must have at least 1024 bits (2048 recommended)")
        self.key = key
        self.domain = domain.encode("idna").decode()
        self.selector = selector
        self.algorithm = "ed25519-sha256" if isinstance(key, ed25519.Ed25519PrivateKey) else "rsa-sha256"

    def _sign_bytes(self, data: bytes) -> bytes:
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            return self.key.sign(hashlib.sha256(data).digest())
        return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def sign(self, raw: bytes, *, now: int | None = None) -> bytes:
        """Return the message with a DKIM-Signature header in front."""
        head, separator, body = raw.partition(b"\r\n\r\n")
        if not separator:
            head, body = raw.rstrip(b"\r\n"), b""
        # Simple body canonicalisation: no trailing empty lines, one final CRLF.
        if not body.endswith(b"\r\n") or body.endswith(b"\r\n\r\n"):
            body = body.rstrip(b"\r\n") + b"\r\n" if body.strip(b"\r\n") else b"\r\n"
        body_hash = base64.b64encode(hashlib.sha256(body).digest()).decode()
        # The last instance of a name is the one signed (RFC 6376 5.4.2); ours occur once.
        last = {name.strip().lower(): (name, value) for name, value in _headers_split(head)}
        names = [wanted for wanted in SIGNED_HEADERS if wanted.encode() in last]
        signed = [_relaxed(*last[wanted.encode()]) + b"\r\n" for wanted in names]
        tags = (
            f"v=1; a={self.algorithm}; c=relaxed/simple; d={self.domain}; s={self.selector}; "
            f"t={int(now if now is not None else time.time())}; h={':'.join(names)}; bh={body_hash}; b="
        )
        data = b"".join(signed) + _relaxed(b"DKIM-Signature", b" " + tags.encode())
        signature = base64.b64encode(self._sign_bytes(data)).decode()
        return b"DKIM-Signature: " + tags.encode() + signature.encode() + b"\r\n" + raw

    def dns_record(self) -> str:
        """Return the TXT record to publish, as a zone-file line (long values split in 255-character strings)."""
        kind, public = public_key_record(self.key)
        value = f"v=DKIM1; k={kind}; p={public}"
        strings = " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))
        return f"{self.selector}._domainkey.{self.domain}. IN TXT ( {strings} )"


@functools.lru_cache(maxsize=4)
def _signer_for(domain: str, selector: str, private_key_pem: str) -> DkimSigner:
    return DkimSigner(domain=domain, selector=selector, private_key_pem=private_key_pem)


def dkim_signer() -> DkimSigner | None:
    """Return the signer the DKIM_* settings describe, or None when signing is off."""
    if not (settings.DKIM_DOMAIN and settings.DKIM_SELECTOR and settings.DKIM_PRIVATE_KEY):
        return None
    return _signer_for(settings.DKIM_DOMAIN, settings.DKIM_SELECTOR, settings.DKIM_PRIVATE_KEY)

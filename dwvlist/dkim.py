"""DKIM signatures (RFC 6376) for every mail the SMTP path sends: the key, the signer.

Why not dkimpy's own signer: its RSA is pure Python (13 ms a message here)
and its canonicalisation a regex pass over every body line (another 3 ms),
thirty times the whole cost of building an issue copy. Our mail is regular
(CRLF everywhere, header fields our encoder or Python's wrote), so the
canonical forms are cheap to produce directly, and the signature is made by
OpenSSL through `cryptography`. dkimpy, the reference, verifies these
signatures in the tests, against the record `manage.py dkim_record` prints.

c=relaxed/simple (as Amazon SES signs): relaxed headers survive relays that
refold them; "simple" makes the body's canonical form the bytes sent. RSA
keys sign rsa-sha256, Ed25519 keys ed25519-sha256 (RFC 8463).

The app's own mail (dwvlist.mail.SmtpBackend) is signed whole by
DkimSigner.sign; the delivery engine's issue copies by DkimBatch
(issues.delivery.transports.dkim), which shares the hashing of a batch's
common beginning and calls DkimSigner.signature_field.
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
_SIGNED = frozenset(SIGNED_HEADERS)
_WSP = re.compile(r"[ \t]+")
# Canonical header fields a batch remembers: its first copy's, of which most are every copy's.
_KNOWN_MAX = 32


def field_relaxed(name: str, line: str) -> str:
    """Return a header field in relaxed canonical form (RFC 6376 3.4.2), with its CRLF.

    `name` is the field's name without surrounding whitespace, `line` the
    whole field, "Name: value", folded or not.
    """
    value = line.partition(":")[2]
    if "\r\n" in value:
        value = value.replace("\r\n", "")  # unfolded; our folds keep their space
    if "\r" in value or "\t" in value or "  " in value or value[:1] != " " or value[-1:] == " ":
        value = " " + _WSP.sub(" ", value).strip(" ")
    return name.lower() + ":" + value[1:] + "\r\n"


def fields_split(head: bytes) -> list[tuple[str, str]]:
    """Return (name, whole field) per header field of a raw head, continuation lines kept in the field."""
    fields: list[tuple[str, str]] = []
    for line in head.decode("utf-8", "surrogateescape").split("\r\n"):
        if line[:1] in (" ", "\t") and fields:
            name, field = fields[-1]
            fields[-1] = (name, field + "\r\n" + line)
        elif ":" in line:
            fields.append((line.partition(":")[0].strip(), line))
    return fields


def body_simple(body: bytes) -> bytes:
    """Return the body in simple canonical form: no trailing empty lines, one final CRLF."""
    if body.endswith(b"\r\n") and not body.endswith(b"\r\n\r\n"):
        return body
    return body.rstrip(b"\r\n") + b"\r\n" if body.strip(b"\r\n") else b"\r\n"


def public_key_record(key) -> tuple[str, str]:
    """Return (k=, p=) of the DNS record for a private key."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return "ed25519", base64.b64encode(raw).decode()
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "rsa", base64.b64encode(der).decode()


class DkimSigner:
    """Signs messages for one domain and selector with one key."""

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
        self._tags_start = f"v=1; a={self.algorithm}; c=relaxed/simple; d={self.domain}; s={self.selector}; t="

    def _sign_bytes(self, data: bytes) -> bytes:
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            return self.key.sign(hashlib.sha256(data).digest())
        return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def signature_field(
        self,
        fields: list[tuple[str, str]],
        body_hash: str,
        *,
        now: int | None = None,
        known: dict[str, tuple[str, str]] | None = None,
    ) -> bytes:
        """Return the DKIM-Signature field, with its CRLF, for header fields (name, whole field) and a body hash.

        Every field named in SIGNED_HEADERS is signed, in the order of the
        message. `known` maps fields already seen to their canonical form
        (the fields a batch's copies share); new ones are added to it while
        it is small.
        """
        if known is None:
            known = {}
        names, canonical = [], []
        for name, line in fields:
            seen = known.get(line)
            if seen is None:
                lower = name.lower()
                seen = (lower, field_relaxed(name, line) if lower in _SIGNED else "")
                if len(known) < _KNOWN_MAX:
                    known[line] = seen
            if seen[1]:
                names.append(seen[0])
                canonical.append(seen[1])
        if len(set(names)) < len(names):
            # A name twice: sign its last instance (RFC 6376 5.4.2), as a verifier reads h= from the bottom up.
            last = {name.lower(): (name, line) for name, line in fields if name.lower() in _SIGNED}
            names = [wanted for wanted in SIGNED_HEADERS if wanted in last]
            canonical = [field_relaxed(*last[wanted]) for wanted in names]
        tags = (
            f"{self._tags_start}{int(now if now is not None else time.time())}; h={':'.join(names)}; bh={body_hash}; b="
        )
        canonical.append("dkim-signature:" + tags)
        signature = base64.b64encode(self._sign_bytes("".join(canonical).encode("utf-8", "surrogateescape")))
        return b"DKIM-Signature: " + tags.encode() + signature + b"\r\n"

    def sign(self, raw: bytes, *, now: int | None = None) -> bytes:
        """Return the message (CRLF line ends) with a DKIM-Signature field in front.

        Raise ValueError when it has no From field: RFC 6376 requires it signed.
        """
        head, separator, body = raw.partition(b"\r\n\r\n")
        if not separator:
            head, body = raw.rstrip(b"\r\n"), b""
        fields = fields_split(head)
        if not any(name.lower() == "from" for name, _ in fields):
            raise ValueError("a message without a From field cannot be DKIM-signed")
        body_hash = base64.b64encode(hashlib.sha256(body_simple(body)).digest()).decode()
        return self.signature_field(fields, body_hash, now=now) + raw

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

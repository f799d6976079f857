"""Django's salted HMAC with its derived key set up once per salt.

django.utils.crypto.salted_hmac derives the key from the salt and
SECRET_KEY on every call; a sending batch makes a thousand links and
hashes a thousand addresses, so the keyed HMAC is kept and copied instead.
The results are byte-for-byte Django's (tested).

After a key rotation the old key sits in SECRET_KEY_FALLBACKS: new values
are always made with SECRET_KEY, and whoever checks a value made earlier
tries every key (`secret_keys()`).
"""

from __future__ import annotations

import functools
import hashlib
import hmac

from django.conf import settings


@functools.lru_cache(maxsize=32)
def _keyed(key_salt: str, secret: str) -> hmac.HMAC:
    return hmac.new(hashlib.sha256(f"{key_salt}{secret}".encode()).digest(), digestmod=hashlib.sha256)


def secret_keys() -> list[str]:
    """Return SECRET_KEY, then every key in SECRET_KEY_FALLBACKS."""
    return [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]


def salted_hmac_digest(key_salt: str, value: str, *, secret: str | None = None) -> bytes:
    """Return salted_hmac(key_salt, value, secret=secret, algorithm="sha256").digest(); SECRET_KEY by default."""
    mac = _keyed(key_salt, settings.SECRET_KEY if secret is None else secret).copy()
    mac.update(value.encode())
    return mac.digest()

"""VERP: each copy's envelope sender names its delivery, so a bounce says whose it is.

With BOUNCE_ADDRESS = bounces@example.org, the reader of delivery 12345 gets
a copy sent MAIL FROM:<bounces+9ix-TOKEN@example.org>, and a bounce comes
back to that address (the MTA files it under bounces@ with its recipient
delimiter "+"). The token is the delivery id in base 36 and 64 bits of a
keyed HMAC over it, lower-case base 32, so an MTA that folds the local part
to lower case does not break it and nobody can make one up.
"""

from __future__ import annotations

import base64
import hmac
import re

from django.conf import settings

from dwvlist.keyed_hmac import salted_hmac_digest

_SALT = "dwvlist.bounces.verp"
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
# +<delivery id in base 36>-<13 characters of base 32>@
VERP_TOKEN = re.compile(r"\+([0-9a-z]{1,13})-([a-z2-7]{13})@", re.IGNORECASE)


def _b36(number: int) -> str:
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = _DIGITS[rest] + out
        if number == 0:
            return out


def _signature(value: str) -> str:
    digest = salted_hmac_digest(_SALT, value)[:8]
    return base64.b32encode(digest).decode().rstrip("=").lower()


def verp_token_make(*, delivery_id: int) -> str:
    """Return the short signed token naming the delivery."""
    value = _b36(delivery_id)
    return f"{value}-{_signature(value)}"


def verp_address(*, delivery_id: int) -> str:
    """Return the envelope sender for the delivery's copy, or "" when BOUNCE_ADDRESS is unset.

    Test copies (no ledger row, ids below 1) get BOUNCE_ADDRESS itself.
    """
    bounce = settings.BOUNCE_ADDRESS
    if not bounce:
        return ""
    if delivery_id < 1:
        return bounce
    local, _, domain = bounce.rpartition("@")
    return f"{local}+{verp_token_make(delivery_id=delivery_id)}@{domain}"


def verp_delivery_id(text: str) -> int | None:
    """Return the delivery id of the first genuine VERP token in `text`, or None."""
    for match in VERP_TOKEN.finditer(text or ""):
        value, signature = match.group(1).lower(), match.group(2).lower()
        if hmac.compare_digest(signature, _signature(value)):
            return int(value, 36)
    return None

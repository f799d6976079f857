"""Signed tokens for the links readers get by email.

Each purpose has its own salt, so a token made for one cannot be used for
another. Unsubscribe and preferences tokens never expire (they sit in old
mail for years) but cannot be forged: they are HMAC-signed with SECRET_KEY
and carry only ids. Ids are encoded in base 36 to keep the URLs short.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core import signing

_UNSUBSCRIBE_SALT = "dwvlist.subscriptions.unsubscribe"
_PREFERENCES_SALT = "dwvlist.subscriptions.preferences"


def _b36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    if number < 0:
        raise ValueError("ids are never negative")
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if number == 0:
            return out


@dataclass(frozen=True)
class UnsubscribeClaim:
    subscriber_id: int
    list_id: int
    issue_id: int | None


def unsubscribe_token_make(*, subscriber_id: int, list_id: int, issue_id: int | None = None) -> str:
    """Return a token naming subscriber, list and (optionally) the issue it came in."""
    value = f"{_b36(subscriber_id)}.{_b36(list_id)}.{_b36(issue_id) if issue_id else ''}"
    return signing.Signer(salt=_UNSUBSCRIBE_SALT, algorithm="sha256").sign(value)


def unsubscribe_token_read(token: str) -> UnsubscribeClaim | None:
    """Return what the token names, or None if it was tampered with or is junk."""
    if not isinstance(token, str) or len(token) > 200:
        return None
    try:
        value = signing.Signer(salt=_UNSUBSCRIBE_SALT, algorithm="sha256").unsign(token)
        subscriber, mailing_list, issue = value.split(".")
        return UnsubscribeClaim(int(subscriber, 36), int(mailing_list, 36), int(issue, 36) if issue else None)
    except (signing.BadSignature, ValueError):
        return None


def preferences_token_make(*, subscriber_id: int) -> str:
    """Return the token of a reader's preference centre."""
    return signing.Signer(salt=_PREFERENCES_SALT, algorithm="sha256").sign(_b36(subscriber_id))


def preferences_token_read(token: str) -> int | None:
    """Return the subscriber id the token names, or None."""
    if not isinstance(token, str) or len(token) > 200:
        return None
    try:
        return int(signing.Signer(salt=_PREFERENCES_SALT, algorithm="sha256").unsign(token), 36)
    except (signing.BadSignature, ValueError):
        return None

"""Signed tokens for the links readers get by email.

Each purpose has its own salt, so a token made for one cannot be used for
another. Unsubscribe and preferences tokens never expire (they sit in old
mail for years) but cannot be forged: they are HMAC-signed with SECRET_KEY
and carry only ids. Ids are encoded in base 36 to keep the URLs short.
Tokens made before a key rotation keep working while the old key is in
SECRET_KEY_FALLBACKS (Django's Signer tries each; so does every check here).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.utils.crypto import constant_time_compare, salted_hmac

from dwvlist.keyed_hmac import salted_hmac_digest, secret_keys

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


def _sign(salt: str, value: str) -> str:
    """Return exactly what signing.Signer(salt=salt, algorithm="sha256").sign(value) returns, faster."""
    digest = salted_hmac_digest(f"{salt}signer", value)
    return f"{value}:{base64.urlsafe_b64encode(digest).rstrip(b'=').decode()}"


@dataclass(frozen=True)
class UnsubscribeClaim:
    subscriber_id: int
    list_id: int
    issue_id: int | None


def unsubscribe_token_make(*, subscriber_id: int, list_id: int, issue_id: int | None = None) -> str:
    """Return a token naming subscriber, list and (optionally) the issue it came in."""
    value = f"{_b36(subscriber_id)}.{_b36(list_id)}.{_b36(issue_id) if issue_id else ''}"
    return _sign(_UNSUBSCRIBE_SALT, value)


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
    return _sign(_PREFERENCES_SALT, _b36(subscriber_id))


def preferences_token_read(token: str) -> int | None:
    """Return the subscriber id the token names, or None."""
    if not isinstance(token, str) or len(token) > 200:
        return None
    try:
        return int(signing.Signer(salt=_PREFERENCES_SALT, algorithm="sha256").unsign(token), 36)
    except (signing.BadSignature, ValueError):
        return None


# --- Confirmation (double opt-in) ---------------------------------------------
#
# Two layers, like contrib.auth's password reset token: a signature proves we
# made the token (so tampering is told apart from reuse), and a digest of the
# subscriber's state at issue time makes it work once, because confirming
# changes that state.

_CONFIRMATION_SALT = "dwvlist.subscriptions.confirmation"
_CONFIRMATION_STATE_SALT = "dwvlist.subscriptions.confirmation.state"


@dataclass(frozen=True)
class ConfirmationClaim:
    subscriber_id: int
    issued_at: int  # Unix seconds
    digest: str


def _state_digest(state: str, secret: str | None = None) -> str:
    return salted_hmac(_CONFIRMATION_STATE_SALT, state, secret=secret, algorithm="sha256").hexdigest()[:24]


def confirmation_token_make(*, subscriber_id: int, issued_at: int, state: str) -> str:
    """Return a confirmation token bound to the subscriber's current state."""
    value = f"{_b36(subscriber_id)}.{_b36(issued_at)}.{_state_digest(state)}"
    return signing.Signer(salt=_CONFIRMATION_SALT, algorithm="sha256").sign(value)


def confirmation_token_read(token: str) -> ConfirmationClaim | None:
    """Return what a confirmation token names, or None if we did not make it."""
    if not isinstance(token, str) or len(token) > 200:
        return None
    try:
        value = signing.Signer(salt=_CONFIRMATION_SALT, algorithm="sha256").unsign(token)
        subscriber, issued_at, digest = value.split(".")
        return ConfirmationClaim(int(subscriber, 36), int(issued_at, 36), digest)
    except (signing.BadSignature, ValueError):
        return None


def confirmation_token_matches(claim: ConfirmationClaim, *, state: str) -> bool:
    """Return True if the state the token was made for is still the current one (under any key in use)."""
    return any(constant_time_compare(claim.digest, _state_digest(state, secret)) for secret in secret_keys())


def confirmation_token_expired(claim: ConfirmationClaim, *, now: int) -> bool:
    """Return True once CONFIRMATION_MAX_AGE_DAYS have passed since the token was made."""
    return now - claim.issued_at > settings.CONFIRMATION_MAX_AGE_DAYS * 86400


# --- Change of address ------------------------------------------------------------

_ADDRESS_SALT = "dwvlist.subscriptions.address"


@dataclass(frozen=True)
class AddressClaim:
    subscriber_id: int
    old_email: str
    new_email: str


def address_token_make(*, subscriber_id: int, old_email: str, new_email: str) -> str:
    """Return a token that moves the subscriber from old_email to new_email.

    Carrying the old address makes it work once: after the change the
    subscriber's address no longer matches it.
    """
    payload = {"s": subscriber_id, "o": old_email, "n": new_email}
    return signing.dumps(payload, salt=_ADDRESS_SALT, compress=True)


def address_token_read(token: str) -> AddressClaim | None:
    """Return what an address token names, or None if it is forged or expired."""
    if not isinstance(token, str) or len(token) > 2000:
        return None
    try:
        payload = signing.loads(token, salt=_ADDRESS_SALT, max_age=settings.CONFIRMATION_MAX_AGE_DAYS * 86400)
        return AddressClaim(int(payload["s"]), str(payload["o"]), str(payload["n"]))
    except (signing.BadSignature, ValueError, KeyError, TypeError):
        return None


# --- Unsubscribe by mail ------------------------------------------------------------
#
# The List-Unsubscribe mailto of each copy is LIST+unsubscribe-TOKEN@domain.
# The token has to be a valid local part that survives mail systems which
# lower-case addresses, so it is ids in base 36 and a truncated HMAC in
# lower-case base 32 (100 bits: forging one means guessing it, a mail per guess).

_MAILTO_SALT = "dwvlist.subscriptions.mailto-unsubscribe"
_MAILTO_MAC_CHARS = 20


def _mailto_mac(value: str, secret: str | None = None) -> str:
    digest = salted_hmac_digest(_MAILTO_SALT, value, secret=secret)
    return base64.b32encode(digest).decode().lower()[:_MAILTO_MAC_CHARS]


def mailto_token_make(*, subscriber_id: int, list_id: int, issue_id: int | None = None) -> str:
    """Return the token of a reader's unsubscribe address: ids and a MAC, lower-case letters, digits and '-'."""
    value = f"{_b36(subscriber_id)}-{_b36(list_id)}-{_b36(issue_id) if issue_id else ''}"
    return f"{value}-{_mailto_mac(value)}"


def mailto_token_read(token: str) -> UnsubscribeClaim | None:
    """Return what an unsubscribe-address token names (made under any key in use), or None."""
    if not isinstance(token, str) or len(token) > 64:
        return None
    token = token.lower()
    value, _, mac = token.rpartition("-")
    if not any(constant_time_compare(mac, _mailto_mac(value, secret)) for secret in secret_keys()):
        return None
    try:
        subscriber, mailing_list, issue = value.split("-")
        return UnsubscribeClaim(int(subscriber, 36), int(mailing_list, 36), int(issue, 36) if issue else None)
    except ValueError:
        return None

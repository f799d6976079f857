"""Validate, normalise and hash email addresses."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from email_validator import EmailNotValidError, validate_email

from dwvlist.keyed_hmac import salted_hmac_digest, secret_keys
from subscriptions.models import EMAIL_MAX_LENGTH

_HASH_SALT = "dwvlist.subscriptions.suppression"


def email_normalize(raw: str) -> str:
    """Return the address validated and normalised, or raise ValidationError.

    No DNS look-ups: deliverability is the provider's business, and a
    look-up per form post would let anyone make us hammer a resolver.
    """
    if not isinstance(raw, str):
        raise ValidationError("Enter an email address.", code="invalid")
    if "\r" in raw or "\n" in raw or "\x00" in raw:
        raise ValidationError("An email address cannot contain line breaks.", code="invalid")
    candidate = raw.strip()
    if not candidate:
        raise ValidationError("Enter an email address.", code="required")
    if len(candidate) > EMAIL_MAX_LENGTH:
        raise ValidationError(f"An email address can be at most {EMAIL_MAX_LENGTH} characters long.", code="too_long")
    try:
        result = validate_email(candidate, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise ValidationError(f"That is not a valid email address: {exc}", code="invalid") from None
    normalized = result.normalized
    if len(normalized) > EMAIL_MAX_LENGTH:
        raise ValidationError(f"An email address can be at most {EMAIL_MAX_LENGTH} characters long.", code="too_long")
    return normalized


def email_hash(email: str) -> str:
    """Return the keyed hash that identifies an address on the suppression list."""
    return salted_hmac_digest(_HASH_SALT, email.strip().lower()).hex()


def email_hashes(email: str) -> list[str]:
    """Return the address's hash under SECRET_KEY, then under each key in SECRET_KEY_FALLBACKS.

    A suppression written before a key rotation carries the old key's hash;
    it is found by one of these and re-keyed (subscriptions/suppressions.py).
    """
    key = email.strip().lower()
    return [salted_hmac_digest(_HASH_SALT, key, secret=secret).hex() for secret in secret_keys()]

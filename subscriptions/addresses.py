"""Validate, normalise and hash email addresses."""

from __future__ import annotations

import functools
import hashlib
import hmac

from django.conf import settings
from django.core.exceptions import ValidationError
from email_validator import EmailNotValidError, validate_email

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
    key = _hash_key(settings.SECRET_KEY)
    return hmac.digest(key, email.strip().lower().encode(), "sha256").hex()


@functools.lru_cache(maxsize=4)
def _hash_key(secret: str) -> bytes:
    # The key django.utils.crypto.salted_hmac(_HASH_SALT, ...) derives, kept
    # because a batch hashes a thousand addresses.
    return hashlib.sha256(f"{_HASH_SALT}{secret}".encode()).digest()

"""Refusing replayed provider webhooks.

Mailgun signs each webhook as HMAC(timestamp + token) but its signature
covers neither the event nor the recipient, and anymail checks neither the
timestamp's age nor whether the token was seen before: a captured request
could be posted again with other event data, for another reader. So a
signature older than MAILGUN_WEBHOOK_MAX_AGE seconds (or as far in the
future) is refused, and each token is accepted once, remembered in Redis
for as long as its signature could pass the age check.
"""

from __future__ import annotations

import json
import math
import time

from anymail.exceptions import AnymailWebhookValidationFailure
from django.conf import settings

from dwvlist.redis import mailgun_token_key, redis_client


def _mailgun_token_and_timestamp(request) -> tuple[str, str]:
    # anymail has checked the signature already, so these fields are there.
    if request.content_type == "application/json":
        block = json.loads(request.body.decode("utf-8"))["signature"]
        return str(block["token"]), str(block["timestamp"])
    return str(request.POST["token"]), str(request.POST["timestamp"])


def mailgun_signature_claim(request) -> str:
    """Refuse a stale or already used Mailgun signature; return the Redis key that now marks its token used.

    Raises AnymailWebhookValidationFailure (a 400 answer) for a refused one.
    """
    token, timestamp = _mailgun_token_and_timestamp(request)
    max_age = settings.MAILGUN_WEBHOOK_MAX_AGE
    try:
        signed_at = float(timestamp)
    except ValueError:
        raise AnymailWebhookValidationFailure("Mailgun webhook timestamp is not a number") from None
    if not math.isfinite(signed_at) or abs(time.time() - signed_at) > max_age:
        raise AnymailWebhookValidationFailure(f"Mailgun webhook signed more than {max_age} seconds away from now")
    key = mailgun_token_key(token)
    # SET NX is atomic: of two posts with one token, only the first gets in.
    if not redis_client().set(key, 1, nx=True, ex=2 * max_age + 60):
        raise AnymailWebhookValidationFailure("Mailgun webhook token already used (a replay)")
    return key


def mailgun_signature_release(key: str) -> None:
    """Forget a token whose request failed on our side, so Mailgun's retry of it is accepted."""
    redis_client().delete(key)

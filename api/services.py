"""Creating, revoking and checking API tokens; the per-token rate limit."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from api.models import PREFIX_LENGTH, SCOPES, ApiToken
from dwvlist.redis import api_rate_key

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "dwv_"
LAST_USED_EVERY = timedelta(minutes=1)


@dataclass
class NewToken:
    token: ApiToken
    secret: str  # the whole bearer value: shown once, never stored


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def api_token_create(*, user, name: str, scopes: Iterable[str], actor=None) -> NewToken:
    """Create a token for the user with the scopes; return it with its secret (shown once).

    `actor` is who asked for it (the audit trail's hook); refused for an
    inactive or non-staff user, an unknown scope, or a blank name.
    """
    name = " ".join((name or "").split())
    wanted = sorted(set(scopes))
    unknown = [s for s in wanted if s not in SCOPES]
    if unknown:
        raise ValidationError(f"Unknown scope: {', '.join(unknown)}. The scopes are: {', '.join(SCOPES)}.")
    if not wanted:
        raise ValidationError("Choose at least one scope.")
    if not name:
        raise ValidationError("Name the token after what will use it.")
    if len(name) > 100:
        raise ValidationError("A token's name can be at most 100 characters long.")
    if not (user.is_active and user.is_staff):
        raise ValidationError("Tokens are for active staff accounts only.")
    for _ in range(5):
        prefix = secrets.token_hex(PREFIX_LENGTH // 2)
        secret = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
        try:
            with transaction.atomic():
                token = ApiToken.objects.create(
                    user=user, name=name, prefix=prefix, secret_hash=_hash(secret), scopes=wanted, created_by=actor
                )
            return NewToken(token=token, secret=secret)
        except IntegrityError:  # the prefix is taken: draw again
            continue
    raise RuntimeError("Could not draw an unused token prefix.")


def api_token_revoke(*, token: ApiToken, actor=None) -> bool:
    """Revoke the token at once; return False if it already was."""
    updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    token.refresh_from_db()
    return updated == 1


def api_token_authenticate(*, secret: str) -> ApiToken | None:
    """Return the active token the bearer value names, or None; note when it was last used."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    prefix, _, rest = secret[len(TOKEN_PREFIX) :].partition("_")
    if len(prefix) != PREFIX_LENGTH or not rest:
        return None
    token = ApiToken.objects.select_related("user").filter(prefix=prefix, revoked_at__isnull=True).first()
    if token is None or not hmac.compare_digest(token.secret_hash, _hash(secret)):
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_EVERY:
        # At most one write a minute per token, whatever the call rate.
        ApiToken.objects.filter(pk=token.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_EVERY)
        ).update(last_used_at=now)
    return token


def api_rate_check(*, token: ApiToken) -> int:
    """Count one call for the token; return 0 if allowed, else the seconds to wait.

    A fixed one-minute window in Redis shared by every web process, of
    API_RATE_PER_MINUTE calls.
    """
    limit = settings.API_RATE_PER_MINUTE
    if limit <= 0:
        return 0
    now = time.time()
    window = int(now // 60)
    key = api_rate_key(token.pk, window)
    try:
        cache.add(key, 0, timeout=120)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=120)
            count = 1
    except Exception:
        # Redis is down: serve the call rather than fail every integration with it.
        logger.warning("api rate limit unavailable; token %s allowed", token.pk, exc_info=True)
        return 0
    if count <= limit:
        return 0
    return max(1, int((window + 1) * 60 - now) + 1)

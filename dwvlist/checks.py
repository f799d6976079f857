"""System checks of the deployment's secrets (registered in DwvlistConfig.ready)."""

from __future__ import annotations

from django.conf import settings
from django.core import checks

from dwvlist.secretkeys import secret_key_weakness


def secret_keys_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Report a SECRET_KEY or fallback key that anyone could know or guess.

    An error with DEBUG off (so `check`, and `check --deploy`, fail); a
    warning with DEBUG on, where the development key is expected.
    """
    level = checks.Warning if settings.DEBUG else checks.Error
    found = []
    keys = [("SECRET_KEY", settings.SECRET_KEY)]
    keys += [("SECRET_KEY_FALLBACKS", key) for key in getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    for name, key in keys:
        weakness = secret_key_weakness(key)
        if weakness and not (settings.DEBUG and name == "SECRET_KEY"):
            found.append(
                level(
                    f"{name} is unfit for production: {weakness}.",
                    hint='Generate one: python -c "import secrets; print(secrets.token_urlsafe(64))"',
                    id="dwvlist.E001" if level is checks.Error else "dwvlist.W001",
                )
            )
    return found

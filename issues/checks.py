"""System checks for settings that can only be judged once the libraries are loaded."""

from __future__ import annotations

from django.core.checks import Error, register


@register()
def dkim_key_check(app_configs, **kwargs) -> list[Error]:
    """Refuse to start with a DKIM key that cannot sign: every batch on the SMTP path would fail."""
    from dwvlist.dkim import dkim_signer

    try:
        dkim_signer()
    except (ValueError, TypeError) as exc:
        return [Error(f"DKIM_PRIVATE_KEY could not be read: {exc}", id="dwvlist.E016")]
    return []

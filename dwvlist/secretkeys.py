"""What makes a SECRET_KEY unfit for production.

A key anyone can read (the development key in settings.py, the
.env.example placeholder, Django's startproject prefix) lets anyone sign
working preference and unsubscribe links for every reader; a short or
repetitive one can be guessed. Settings refuse such a key at start when
DEBUG is off, and the system check in dwvlist/checks.py reports it.
"""

from __future__ import annotations

# The key `make run` and the tests use with DEBUG on; published in this repository.
DEVELOPMENT_KEY = "dev-only-insecure-key-change-me-0123456789-abcdefghijklmnopqrstuvwxyz"
# Every value .env.example has shown, and other keys published in this repository.
PUBLISHED_KEYS = frozenset(
    {
        DEVELOPMENT_KEY,
        "change-me-to-a-long-random-string-of-at-least-fifty-characters",
        "replace-me",
        "bench-" + "k" * 60,
    }
)
PLACEHOLDER_WORDS = ("change-me", "changeme", "replace-me", "insecure", "django-insecure", "example", "secret-key")
MIN_LENGTH = 50
MIN_DISTINCT_CHARACTERS = 10


def secret_key_weakness(key: str) -> str | None:
    """Return why the key must not be used in production, or None if it is fit."""
    if key in PUBLISHED_KEYS:
        return "it is a published value (the development key or the .env.example placeholder)"
    lowered = key.lower()
    for word in PLACEHOLDER_WORDS:
        if word in lowered:
            return f"it looks like a placeholder (it contains {word!r})"
    if len(key) < MIN_LENGTH:
        return f"it is shorter than {MIN_LENGTH} characters"
    if len(set(key)) < MIN_DISTINCT_CHARACTERS:
        return f"it has fewer than {MIN_DISTINCT_CHARACTERS} different characters"
    if (key + key).find(key, 1) < len(key):
        return "it is a short pattern repeated"
    return None

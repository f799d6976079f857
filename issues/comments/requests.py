"""Is this mail to the editors a request to subscribe or to leave? The rules, in one place.

Only the subject and the first lines the writer typed are read (quoted
text and signatures are not), in English. A match only suggests: the
editor decides, with one button.
"""

from __future__ import annotations

import re

SUBSCRIBE = "subscribe"
UNSUBSCRIBE = "unsubscribe"

# Leaving is tried first: "unsubscribe" and "take me off your list" name the list too.
_RULES = [
    (
        UNSUBSCRIBE,
        re.compile(
            r"\b(unsubscribe|unsub|remove me|take me off|opt[ -]?out|stop (sending|emailing|mailing)( me)?"
            r"|no longer (want|wish) to (receive|get))\b",
            re.IGNORECASE,
        ),
    ),
    (
        SUBSCRIBE,
        re.compile(
            r"\b(subscribe|sign (me )?up|add me|put me on|join (the|your) (mailing )?list|"
            r"(want|like|wish) to (receive|get) (the|your) (newsletter|list|mailings?|issues?))\b",
            re.IGNORECASE,
        ),
    ),
]
FIRST_LINES = 3


def _typed_lines(text: str) -> list[str]:
    """Return the first lines the writer typed: no blank, quoted (>) or signature lines."""
    lines = []
    for line in text.splitlines():
        if line.strip() in ("--", "-- "):
            break
        if line.strip() and not line.lstrip().startswith(">"):
            lines.append(line.strip())
        if len(lines) >= FIRST_LINES:
            break
    return lines


def request_kind(*, subject: str, text: str) -> str | None:
    """Return SUBSCRIBE or UNSUBSCRIBE if the mail reads as that request, else None."""
    subject = re.sub(r"^\s*((re|fwd?|aw|sv)\s*:\s*)+", "", subject or "", flags=re.IGNORECASE)
    head = "\n".join([subject, *_typed_lines(text or "")])
    for kind, pattern in _RULES:
        if pattern.search(head):
            return kind
    return None

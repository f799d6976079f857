"""The issue mail's own parts of the wire format: its Message-ID (the encoding itself is dwvlist.mailwire)."""

from __future__ import annotations

import secrets

from dwvlist.mailwire import (  # noqa: F401 (the delivery engine's names for them)
    AddressError,
    MessageTemplate,
    address_display,
    address_encode,
    address_header,
    address_needs_smtputf8,
    address_wire,
    body_encode,
    domain_wire,
    dot_stuff,
    encoded_words,
    header_encode,
    header_line,
    header_value,
    message_join,
    text_canonical,
)


def message_id_make(*, issue_id: int, subscriber_id: int | None, domain: str, nonce: str = "") -> str:
    """Return a unique Message-ID naming the issue and reader (without the angle brackets).

    `nonce` tells apart two attempts at the same reader's copy: a batch
    passes its random claim token; without one a fresh random part is drawn.
    """
    return f"dwv.{issue_id}.{subscriber_id or 0}.{nonce or secrets.token_hex(6)}@{domain_wire(domain)}"

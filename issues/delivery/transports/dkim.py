"""DKIM signing of a batch's issue copies: dwvlist.dkim's signer, with the work the copies share done once.

The SMTP transport builds each copy as header fields and a body, a
canonical CRLF text that already ends in one CRLF, and c=relaxed/simple
makes the body's canonical form the bytes themselves. A batch's copies
begin with the same bytes up to the first reader's own link, so they share
the SHA-256 state of that prefix: it is hashed once per batch and copied
for each copy; the header fields the copies share are canonicalised once.
"""

from __future__ import annotations

import base64
import hashlib

from dwvlist.dkim import DkimSigner, body_simple

# A shared body prefix shorter than this is not worth keeping a hash state for.
_PREFIX_MIN = 512


class DkimBatch:
    """Signs a batch's copies, given as header fields and body (MessageTemplate.render_fields).

    The first two bodies give the prefix every copy is expected to share
    (the MIME boundary and the text up to the reader's first own link); its
    SHA-256 state is kept and copied, and only the rest of each body is
    hashed. A body that does not begin with the prefix is hashed whole, so
    the result is the same in every case, only faster in the usual one.
    """

    def __init__(self, signer: DkimSigner) -> None:
        self.signer = signer
        self._first: bytes | None = None
        self._prefix = b""
        self._state = None
        self._known: dict[str, tuple[str, str]] = {}

    def _body_hash(self, body: bytes) -> str:
        prefix = self._prefix
        if prefix and body.startswith(prefix):
            digest = self._state.copy()
            digest.update(memoryview(body)[len(prefix) :])
        else:
            digest = hashlib.sha256(body)
            self._learn(body)
        return base64.b64encode(digest.digest()).decode()

    def _learn(self, body: bytes) -> None:
        first, self._first = self._first, body
        if first is None:
            return
        low, high = 0, min(len(first), len(body))  # binary search for the longest common prefix
        while low < high:
            middle = (low + high + 1) // 2
            if body.startswith(first[:middle]):
                low = middle
            else:
                high = middle - 1
        # Back to the start of the line: the prefix then ends before the first
        # reader's link, not inside it where two readers' tokens happen to agree.
        low = body.rfind(b"\n", 0, low) + 1
        if low >= _PREFIX_MIN:
            self._prefix = body[:low]
            self._state = hashlib.sha256(self._prefix)

    def sign(self, fields: list[tuple[str, str]], body: bytes, *, now: int | None = None) -> bytes:
        """Return the raw message, a DKIM-Signature field in front of the header fields and body."""
        body = body_simple(body)
        head = "\r\n".join([line for _, line in fields]).encode("utf-8", "surrogateescape")
        field = self.signer.signature_field(fields, self._body_hash(body), now=now, known=self._known)
        return b"".join([field, head, b"\r\n\r\n", body])

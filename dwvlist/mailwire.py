"""Mail as it goes on the wire: headers and bodies encoded for any Unicode, as raw RFC 5322 bytes, fast.

Every mail path uses this: each reader's copy of an issue (the parts
that are the same for every reader, the encoded From, Subject, Reply-To,
are prepared once per batch in a MessageTemplate; per reader only the To
header, the links and the two bodies are encoded, in C where it counts)
and the system's own mails (confirmations, welcome, answers).

Headers: a value that is ASCII goes as it is (quoted where RFC 5322 wants
it); anything else becomes RFC 2047 encoded words of at most 75
characters, folded onto lines of at most 78. Domains go in IDNA (A-label)
form. A non-ASCII local part can only travel in an SMTPUTF8 (RFC 6531)
transaction: such a copy is built with raw UTF-8 where the address
appears, and the transport refuses it when the relay does not offer
SMTPUTF8. Bodies are canonical CRLF text sent 7bit or 8bit when their
lines allow (8bit only where the relay offers 8BITMIME), quoted-printable
otherwise.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass, field
from email.utils import formatdate

import idna

_HEADER_UNSAFE = str.maketrans({"\r": " ", "\n": " ", "\x00": " "})
# RFC 5322 atext plus the space: a phrase made only of these needs no quotes.
_ATOM_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*")
# Something a reader's program would decode as an RFC 2047 encoded word.
_LOOKS_ENCODED = re.compile(r"=\?[^?\s]*\?[bBqQ]\?")
MAX_LINE = 78  # RFC 5322 "SHOULD"; 998 is the hard limit
MAX_ENCODED_WORD = 75  # RFC 2047
_WORD_PREFIX, _WORD_SUFFIX = "=?utf-8?b?", "?="
# Bytes of UTF-8 per encoded word: 75 - 12 characters of base64 = 15 groups of 4 = 45 bytes.
_WORD_BYTES = (MAX_ENCODED_WORD - len(_WORD_PREFIX) - len(_WORD_SUFFIX)) // 4 * 3
MAX_BODY_LINE = 998  # octets, without the CRLF (RFC 5321 4.5.3.1.6)


class AddressError(ValueError):
    """An address that cannot be put on the wire (its domain has no IDNA form, it is empty)."""


def domain_wire(domain: str) -> str:
    """Return the domain in its ASCII (IDNA A-label) form."""
    if domain.isascii():
        return domain
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError:
        try:
            return domain.encode("idna").decode("ascii")  # IDNA 2003, for the few names 2008 refuses
        except UnicodeError as exc:
            raise AddressError(f"the domain {domain!r} has no valid international (IDNA) form") from exc


def address_wire(address: str) -> str:
    """Return the address with its domain in IDNA form (the local part is kept as typed)."""
    local, at, domain = address.strip().rpartition("@")
    if not at or not local or not domain:
        raise AddressError(f"{address!r} is not an email address")
    return f"{local}@{domain_wire(domain)}"


def address_needs_smtputf8(address: str) -> bool:
    """Return True if the address's local part (before the @) is not ASCII."""
    return not address.rpartition("@")[0].isascii()


def encoded_words(text: str, *, first_room: int = MAX_ENCODED_WORD) -> list[str]:
    """Return the text as RFC 2047 base64 encoded words of at most 75 characters, never splitting a character.

    The first word is at most `first_room` characters long (what is left of
    the header's first line), but always holds at least one character.
    """
    overhead = len(_WORD_PREFIX) + len(_WORD_SUFFIX)
    room = max(4, (min(first_room, MAX_ENCODED_WORD) - overhead) // 4 * 3)
    words, chunk, size = [], [], 0
    for char in text:
        length = len(char.encode("utf-8"))
        if chunk and size + length > room:
            words.append("".join(chunk))
            chunk, size, room = [], 0, _WORD_BYTES
        chunk.append(char)
        size += length
    if chunk:
        words.append("".join(chunk))
    return [f"{_WORD_PREFIX}{base64.b64encode(w.encode('utf-8')).decode('ascii')}{_WORD_SUFFIX}" for w in words]


def _fold(name: str, tokens: list[str]) -> str:
    """Return "Name: tokens" with the tokens joined by spaces, folded before a token that would pass 78."""
    lines, line = [], f"{name}:"
    for token in tokens:
        if token and len(line) + 1 + len(token) > MAX_LINE and line != f"{name}:":
            lines.append(line)
            line = ""
        line = f"{line} {token}"
    lines.append(line)
    return "\r\n".join(lines)


def _first_room(name: str) -> int:
    return MAX_LINE - len(name) - 2


def _list_id_tokens(value: str) -> list[str]:
    """Return List-Id's value (RFC 2919: a phrase, then <id>) as tokens, the phrase encoded as a display name is."""
    phrase, _, list_id = value.rpartition(" <")
    phrase = phrase.strip()
    if len(phrase) >= 2 and phrase[0] == phrase[-1] == '"':
        phrase = re.sub(r"\\(.)", r"\1", phrase[1:-1])
    return [*phrase_tokens(phrase, first_room=_first_room("List-Id")), f"<{list_id}"]


def header_tokens(name: str, value: str) -> list[str]:
    """Return the tokens of an unstructured header's value (List-Id's phrase as a phrase), encoded where needed."""
    value = value.translate(_HEADER_UNSAFE)
    if name.lower() == "list-id" and " <" in value and not value.isascii():
        return _list_id_tokens(value)
    if value.isascii() and not _LOOKS_ENCODED.search(value):
        return value.split(" ")
    return encoded_words(value, first_room=_first_room(name))


def header_value(name: str, value: str) -> str:
    """Return the header's value encoded (ASCII) on one line, for libraries that refuse folded values."""
    return " ".join(header_tokens(name, value))


def header_line(name: str, value: str) -> str:
    """Return one unstructured header (Subject, a List-* header) as folded, encoded text without its CRLF."""
    value = value.translate(_HEADER_UNSAFE)
    if name.lower() == "list-id" and not value.isascii():
        return _fold(name, header_tokens(name, value))
    if value.isascii() and not _LOOKS_ENCODED.search(value):
        if len(name) + 2 + len(value) <= MAX_LINE:
            return f"{name}: {value}"
        return _fold(name, value.split(" "))  # folded at spaces: unfolding gives back what was typed
    return _fold(name, encoded_words(value, first_room=_first_room(name)))


def header_encode(value: str) -> str:
    """Return the value of an unstructured header, encoded and folded, without the name."""
    return header_line("X", value)[3:]


def phrase_tokens(phrase: str, *, first_room: int = MAX_ENCODED_WORD) -> list[str]:
    """Return a display name as header tokens: as it is, quoted, or as encoded words."""
    phrase = phrase.translate(_HEADER_UNSAFE).strip()
    if not phrase:
        return []
    if phrase.isascii() and not _LOOKS_ENCODED.search(phrase):
        if _ATOM_PHRASE.fullmatch(phrase) and "  " not in phrase:
            return phrase.split(" ")
        return ['"' + phrase.replace("\\", "\\\\").replace('"', '\\"') + '"']
    return encoded_words(phrase, first_room=first_room)


def address_tokens(name: str, address: str, *, first_room: int = MAX_ENCODED_WORD) -> list[str]:
    """Return "Name <address>" as header tokens, the domain in IDNA form."""
    wire = address_wire(address)
    tokens = phrase_tokens(name, first_room=first_room)
    return [*tokens, f"<{wire}>"] if tokens else [wire]


def address_header(header: str, name: str, address: str) -> str:
    """Return an address header line (From, To, Reply-To) without its CRLF."""
    return _fold(header, address_tokens(name, address, first_room=_first_room(header)))


def address_encode(name: str, address: str) -> str:
    """Return "Name <address>" encoded for a header value on one line (for an API field that takes one)."""
    return " ".join(address_tokens(name, address))


def address_display(name: str, address: str) -> str:
    """Return "Name <address>" as Unicode, quoted where needed, for libraries that encode it themselves."""
    name = name.translate(_HEADER_UNSAFE).strip()
    if not name:
        return address
    if not _ATOM_PHRASE.fullmatch(name.encode("ascii", "replace").decode()) or "  " in name:
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{address}>"


_BARE_LINE_END = re.compile(r"\r\n|\r|\n")


def text_canonical(text: str) -> bytes:
    """Return the text as UTF-8 with every line ending a CRLF (RFC 2045's canonical form)."""
    if "\r" in text:
        text = _BARE_LINE_END.sub("\n", text)
    return text.replace("\n", "\r\n").encode("utf-8")


def body_encode(data: bytes, *, eightbit: bool) -> tuple[str, bytes]:
    """Return (Content-Transfer-Encoding, encoded body ending in CRLF) for canonical CRLF text.

    7bit when the text is ASCII with short lines, 8bit when it is not ASCII
    and the relay takes 8BITMIME, quoted-printable otherwise; base64 only
    for text that holds NUL or stray control bytes a relay could mangle.
    """
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    if b"\x00" in data:
        encoded = binascii.b2a_base64(data, newline=False)
        return "base64", b"\r\n".join([encoded[i : i + 76] for i in range(0, len(encoded), 76)]) + b"\r\n"
    short = max(map(len, data.split(b"\r\n"))) <= MAX_BODY_LINE
    if short and data.isascii():
        return "7bit", data
    if short and eightbit:
        return "8bit", data
    return "quoted-printable", binascii.b2a_qp(data, quotetabs=False, istext=True, header=False)


def dot_stuff(raw: bytes) -> bytes:
    """Return the message with a dot doubled at the start of each line (RFC 5321 4.5.2)."""
    stuffed = raw.replace(b"\r\n.", b"\r\n..")
    return b"." + stuffed if stuffed.startswith(b".") else stuffed


@dataclass
class MessageTemplate:
    """The parts of an issue mail that do not change from reader to reader.

    The header fields are complete lines without their CRLF (address_header,
    header_line). The MIME boundary is drawn once per template too, so every
    copy of a batch begins its body with the same bytes (what lets a DKIM
    signer hash that shared part once); 96 random bits cannot occur in the
    text by chance.
    """

    from_line: str
    subject_line: str
    reply_to_line: str
    extra_headers: dict[str, str]
    boundary: str = field(default_factory=lambda: "==dwv" + secrets.token_hex(12))

    def render_fields(
        self,
        *,
        to_name: str,
        to: str,
        message_id: str,
        text: str,
        html: str,
        headers: dict[str, str],
        eightbit: bool = False,
    ) -> tuple[list[tuple[str, str]], bytes]:
        """Return one reader's copy as its header fields, (name, whole line without CRLF), and its body."""
        fields = [
            ("From", self.from_line),
            ("To", address_header("To", to_name, to)),
            ("Subject", self.subject_line),
            ("Date", f"Date: {formatdate(localtime=False, usegmt=True)}"),
            ("Message-ID", f"Message-ID: <{message_id}>"),
            ("MIME-Version", "MIME-Version: 1.0"),
        ]
        if self.reply_to_line:
            fields.append(("Reply-To", self.reply_to_line))
        for name, value in {**self.extra_headers, **headers}.items():
            fields.append((name, header_line(name, value)))
        boundary = self.boundary
        fields.append(("Content-Type", f'Content-Type: multipart/alternative; boundary="{boundary}"'))
        text_cte, text_body = body_encode(text_canonical(text), eightbit=eightbit)
        html_cte, html_body = body_encode(text_canonical(html), eightbit=eightbit)
        body = b"".join(
            [
                f"--{boundary}\r\n".encode(),
                f'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: {text_cte}\r\n\r\n'.encode(),
                text_body,
                f"--{boundary}\r\n".encode(),
                f'Content-Type: text/html; charset="utf-8"\r\nContent-Transfer-Encoding: {html_cte}\r\n\r\n'.encode(),
                html_body,
                f"--{boundary}--\r\n".encode(),
            ]
        )
        return fields, body

    def render(
        self,
        *,
        to_name: str,
        to: str,
        message_id: str,
        text: str,
        html: str,
        headers: dict[str, str],
        eightbit: bool = False,
    ) -> bytes:
        """Return the complete message for one reader (UTF-8 in the To header if their local part is not ASCII)."""
        fields, body = self.render_fields(
            to_name=to_name, to=to, message_id=message_id, text=text, html=html, headers=headers, eightbit=eightbit
        )
        return message_join(fields, body)


def message_join(fields: list[tuple[str, str]], body: bytes) -> bytes:
    """Return the raw message made of header fields (as render_fields returns them) and a body."""
    return "\r\n".join([line for _, line in fields]).encode("utf-8") + b"\r\n\r\n" + body

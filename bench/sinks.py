"""Loopback mail sinks for the tests and the benchmark.

- SmtpSink: a real SMTP server (aiosmtpd) on 127.0.0.1.
- EspSink: an HTTP server that speaks the parts of Mailgun's and Postmark's
  sending APIs that anymail uses, answering as the real APIs do.

Both count recipients, spot duplicates, and check that every copy carries
its own List-Unsubscribe URL. Faults can be switched on: SMTP codes per
address, and for the ESP a share of 503 answers and of timeouts.
"""

from __future__ import annotations

import email
import email.policy
import json
import logging
import random
import re
import socket
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote_plus

from aiosmtpd.controller import Controller

# aiosmtpd logs every SMTP command at INFO; that would drown the benchmark.
logging.getLogger("mail.log").setLevel(logging.WARNING)

_UNSUB = re.compile(rb"^List-Unsubscribe: <([^>]+)>", re.MULTILINE | re.IGNORECASE)


@dataclass
class Tally:
    """What a sink received, safe to update from several threads."""

    keep_messages: bool = False
    recipients: Counter = field(default_factory=Counter)
    unsubscribe_urls: dict = field(default_factory=dict)
    missing_unsubscribe: int = 0
    shared_unsubscribe: int = 0
    messages: list = field(default_factory=list)
    calls: int = 0
    first_at: float | None = None
    last_at: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, address: str, unsubscribe: str | None, raw: bytes | dict | None = None) -> None:
        address = address.lower()
        with self.lock:
            now = time.monotonic()
            self.first_at = self.first_at or now
            self.last_at = now
            self.recipients[address] += 1
            if not unsubscribe:
                self.missing_unsubscribe += 1
            else:
                owner = self.unsubscribe_urls.setdefault(unsubscribe, address)
                if owner != address:
                    self.shared_unsubscribe += 1
            if self.keep_messages and raw is not None:
                self.messages.append(raw)

    @property
    def total(self) -> int:
        return sum(self.recipients.values())

    @property
    def unique(self) -> int:
        return len(self.recipients)

    @property
    def duplicates(self) -> int:
        return self.total - self.unique

    def parsed(self) -> list[email.message.EmailMessage]:
        """Return the kept SMTP messages parsed."""
        return [email.message_from_bytes(raw, policy=email.policy.default) for raw in self.messages]


# --- SMTP --------------------------------------------------------------------------


class _SmtpHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.sink.reply_for(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        match = _UNSUB.search(raw)
        for address in envelope.rcpt_tos:
            self.sink.tally.add(address, match.group(1).decode() if match else None, raw)
        return "250 Message accepted"


class SmtpSink:
    """A real SMTP server on loopback that counts what it receives."""

    def __init__(self, *, keep_messages: bool = False, port: int = 0) -> None:
        self.tally = Tally(keep_messages=keep_messages)
        self.replies: dict[str, str] = {}  # address -> SMTP reply to RCPT, e.g. "550 5.1.1 No such user"
        self.controller = Controller(_SmtpHandler(self), hostname="127.0.0.1", port=port or _free_port())

    def reply_for(self, address: str) -> str | None:
        return self.replies.get(address.lower())

    @property
    def port(self) -> int:
        return self.controller.port

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- ESP APIs -------------------------------------------------------------------------


class EspSink:
    """Mailgun's and Postmark's sending APIs on loopback.

    Mailgun: POST /v3/<domain>/messages, multipart or urlencoded form with
    repeated `to`, `recipient-variables` JSON and `h:` headers; answers
    {"id": "<...>", "message": "Queued. Thank you."}.
    Postmark: POST /email (JSON) answers {"To", "SubmittedAt", "MessageID",
    "ErrorCode": 0, "Message": "OK"}; POST /email/batch takes a JSON list.
    """

    def __init__(
        self, *, fail_share: float = 0.0, timeout_share: float = 0.0, hang: float = 5.0, seed: int = 7
    ) -> None:
        self.tally = Tally()
        self.fail_share = fail_share
        self.timeout_share = timeout_share
        self.hang = hang
        self.random = random.Random(seed)
        self.random_lock = threading.Lock()
        self.faults = Counter()
        self.throttle_calls = 0  # answer this many calls with 429 and Retry-After first
        self.retry_after = 1
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                # Headers and body go out in two writes; without this, Nagle's
                # algorithm and the client's delayed ACK add 40 ms to every call.
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                with sink.random_lock:
                    roll = sink.random.random()
                if sink.throttle_calls > 0:
                    sink.throttle_calls -= 1
                    sink.faults["429"] += 1
                    data = json.dumps({"message": "Too many requests"}).encode()
                    self.send_response(429)
                    self.send_header("Retry-After", str(sink.retry_after))
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if roll < sink.timeout_share:
                    sink.faults["timeout"] += 1
                    time.sleep(sink.hang)
                    self.close_connection = True
                    return
                if roll < sink.timeout_share + sink.fail_share:
                    sink.faults["503"] += 1
                    return self._json(503, {"message": "Service Unavailable"})
                if self.path.startswith("/v3/") and self.path.endswith("/messages"):
                    return self._mailgun(body)
                if self.path == "/email":
                    return self._postmark([json.loads(body)], single=True)
                if self.path == "/email/batch":
                    return self._postmark(json.loads(body), single=False)
                return self._json(404, {"message": "Not found"})

            def _json(self, status: int, payload) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _mailgun(self, body: bytes) -> None:
                content_type = self.headers.get("Content-Type", "")
                fast = _mailgun_urlencoded_fast(body) if content_type.startswith("application/x-www") else None
                if fast is not None:
                    sink.tally.calls += 1
                    for address, unsubscribe in fast:
                        sink.tally.add(address, unsubscribe)
                    domain = self.path.split("/")[2]
                    return self._json(200, {"id": f"<{uuid.uuid4().hex}@{domain}>", "message": "Queued. Thank you."})
                fields = _form_fields(content_type, body)
                recipients = fields.get("to", [])
                variables = json.loads(fields.get("recipient-variables", ["{}"])[0])
                header = fields.get("h:List-Unsubscribe", [""])[0]
                sink.tally.calls += 1
                for address in recipients:
                    bare = address.split("<")[-1].rstrip(">").strip()
                    personal = variables.get(bare, {})
                    value = personal.get("h:List-Unsubscribe") if "%recipient." in header else header
                    match = re.match(r"<([^>]+)>", value or "")
                    sink.tally.add(bare, match.group(1) if match else None)
                domain = self.path.split("/")[2]
                self._json(200, {"id": f"<{uuid.uuid4().hex}@{domain}>", "message": "Queued. Thank you."})

            def _postmark(self, messages: list, *, single: bool) -> None:
                answers = []
                sink.tally.calls += 1
                for message in messages:
                    headers = {h["Name"]: h["Value"] for h in message.get("Headers", [])}
                    match = re.match(r"<([^>]+)>", headers.get("List-Unsubscribe", ""))
                    sink.tally.add(message["To"], match.group(1) if match else None)
                    answers.append(
                        {
                            "To": message["To"],
                            "SubmittedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                            "MessageID": str(uuid.uuid4()),
                            "ErrorCode": 0,
                            "Message": "OK",
                        }
                    )
                self._json(200, answers[0] if single else answers)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> EspSink:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


_MG_TO = re.compile(rb"(?:^|&)to=([^&]*)")
_MG_VARIABLES = re.compile(rb"(?:^|&)recipient-variables=([^&]*)")
_MG_RECIPIENT = re.compile(rb"%22([^%]+%40[^%]+)%22%3A\+%7B(.*?)%7D")
_MG_UNSUB = re.compile(rb"%22h%3AList-Unsubscribe%22%3A\+%22%3C(.*?)%3E")
_MG_HEADER = b"h%3AList-Unsubscribe=%25recipient.h%3AList-Unsubscribe%25"


def _mailgun_urlencoded_fast(body: bytes) -> list[tuple[str, str | None]] | None:
    """Return (recipient, their List-Unsubscribe URL) from a Mailgun batch, without decoding the bodies.

    Decoding 600 KB of urlencoded form in Python would make the sink the
    slowest part of the benchmark; these regular expressions run in C over
    the encoded bytes. Returns None (use the full parser) when the request
    is not the shape this understands.
    """
    if _MG_HEADER not in body:
        return None
    tos = [unquote_plus(m.decode()) for m in _MG_TO.findall(body)]
    variables = _MG_VARIABLES.search(body)
    if not variables:
        return None
    personal = {}
    for match in _MG_RECIPIENT.finditer(variables.group(1)):
        unsub = _MG_UNSUB.search(match.group(2))
        personal[unquote_plus(match.group(1).decode())] = unquote_plus(unsub.group(1).decode()) if unsub else None
    out = []
    for to in tos:
        bare = to.split("<")[-1].rstrip(">").strip()
        if bare not in personal:
            return None
        out.append((bare, personal[bare]))
    return out


def _form_fields(content_type: str, body: bytes) -> dict[str, list[str]]:
    """Parse a urlencoded or multipart/form-data body into {name: [values]}."""
    if content_type.startswith("application/x-www-form-urlencoded"):
        return parse_qs(body.decode(), keep_blank_values=True)
    message = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=email.policy.HTTP
    )
    fields: dict[str, list[str]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name is None or part.get_filename():
            continue
        fields.setdefault(name, []).append(
            part.get_content() if part.get_content_maintype() == "text" else part.get_payload(decode=True).decode()
        )
    return fields


# --- A fast SMTP sink for the benchmark -------------------------------------------------


class _FastSmtpProtocol:
    """A minimal SMTP receiver: enough of RFC 5321 for smtplib, with no per-command coroutines.

    aiosmtpd is the reference server the tests use; at a few hundred
    messages a second it would measure itself rather than us, so the
    benchmark uses this one. It accepts every message.
    """

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.buffer = bytearray()
        self.in_data = False
        self.rcpts: list[str] = []
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(b"220 sink ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.in_data:
                end = self.buffer.find(b"\r\n.\r\n")
                if end < 0:
                    return
                message = bytes(self.buffer[: end + 2])
                del self.buffer[: end + 5]
                self.in_data = False
                match = _UNSUB.search(message, 0, 8192)
                unsubscribe = match.group(1).decode() if match else None
                for address in self.rcpts:
                    self.tally.add(address, unsubscribe)
                self.rcpts = []
                self.transport.write(b"250 OK\r\n")
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                return
            line = bytes(self.buffer[:end])
            del self.buffer[: end + 2]
            verb = line[:4].upper()
            if verb == b"RCPT":
                self.rcpts.append(line.split(b"<", 1)[1].split(b">", 1)[0].decode())
                self.transport.write(b"250 OK\r\n")
            elif verb == b"DATA":
                self.in_data = True
                self.transport.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            elif verb in (b"EHLO", b"HELO"):
                self.transport.write(b"250-sink\r\n250 8BITMIME\r\n")
            elif verb == b"QUIT":
                self.transport.write(b"221 Bye\r\n")
                self.transport.close()
                return
            elif verb == b"RSET":
                self.rcpts = []
                self.transport.write(b"250 OK\r\n")
            else:  # MAIL, NOOP and the rest
                self.transport.write(b"250 OK\r\n")

    def eof_received(self):
        return False

    def connection_lost(self, exc) -> None:
        pass


class FastSmtpSink:
    """The benchmark's SMTP sink: an asyncio server in a thread of its own."""

    def __init__(self) -> None:
        import asyncio

        self.tally = Tally()
        self.loop = asyncio.new_event_loop()
        self.port = _free_port()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.ready = threading.Event()

    def _run(self) -> None:
        import asyncio

        asyncio.set_event_loop(self.loop)

        class Protocol(_FastSmtpProtocol, asyncio.Protocol):
            pass

        server = self.loop.run_until_complete(
            self.loop.create_server(lambda: Protocol(self.tally), "127.0.0.1", self.port)
        )
        self.ready.set()
        self.loop.run_forever()
        server.close()

    def start(self) -> FastSmtpSink:
        self.thread.start()
        self.ready.wait(10)
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

"""Loopback mail sinks for the tests and the benchmark.

- SmtpSink: a real SMTP server (aiosmtpd) on 127.0.0.1.
- EspSink: an HTTP server that speaks the parts of Mailgun's, Postmark's,
  SendGrid's, Brevo's and Mailjet's sending APIs that anymail uses,
  answering as the real APIs do.

Both count recipients, spot duplicates, and check that every copy carries
its own List-Unsubscribe URL. Faults can be switched on: SMTP codes per
address, and for the ESP a share of 503 answers and of timeouts.
"""

from __future__ import annotations

import email
import email.policy
import functools
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
    SendGrid: POST /v3/mail/send, one personalization per copy, answers 202
    with an empty body and X-Message-Id. Brevo: POST /v3/smtp/email with
    messageVersions answers 201 {"messageIds": [...]}. Mailjet: POST
    /v3.1/send answers {"Messages": [{"Status", "To": [...]}]}, 400 when a
    message has an error. Each fills its per-copy variables into subject and
    bodies as the real ESP does, and the kept message (keep_messages) is one
    dict per copy: to, subject, headers, text, html, metadata, message_id, request.
    """

    def __init__(
        self, *, fail_share: float = 0.0, timeout_share: float = 0.0, hang: float = 5.0, seed: int = 7
    ) -> None:
        self.random_lock = threading.Lock()
        self.reset(fail_share=fail_share, timeout_share=timeout_share, hang=hang, seed=seed)
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
                    sink.posts += 1
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
                if self.path == "/v3/mail/send":
                    return self._sendgrid(json.loads(body))
                if self.path == "/v3/smtp/email":
                    return self._brevo(json.loads(body))
                if self.path == "/v3.1/send":
                    return self._mailjet(json.loads(body))
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
                keep = sink.tally.keep_messages
                urlencoded = content_type.startswith("application/x-www") and not keep
                fast = _mailgun_urlencoded_fast(body) if urlencoded else None
                if fast is None:
                    fields = (
                        _multipart_fields_fast(content_type, body)
                        if content_type.startswith("multipart/form-data")
                        else _form_fields(content_type, body)
                    )
                    fast = _mailgun_recipients(fields)
                record = {"path": self.path, "headers": dict(self.headers), "fields": fields if keep else {}}
                if keep:
                    with sink.tally.lock:
                        sink.requests.append(record)
                if sink.answer_status:
                    record["answer"] = sink.answer_body
                    return self._json(sink.answer_status, sink.answer_body)
                if sink.refuse and any(address.lower() in sink.refuse for address, _ in fast):
                    # One bad address and Mailgun refuses the whole call, without naming it.
                    record["answer"] = {"message": "'to' parameter is not a valid address. please check documentation"}
                    return self._json(400, record["answer"])
                sink.tally.calls += 1
                for address, unsubscribe in fast:
                    sink.tally.add(address, unsubscribe)
                domain = self.path.split("/")[2]
                record["answer"] = {"id": f"<{uuid.uuid4().hex}@{domain}>", "message": "Queued. Thank you."}
                self._json(200, record["answer"])

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

            def _tally(self, copies: list[dict]) -> None:
                with sink.tally.lock:
                    sink.tally.calls += 1
                for copy in copies:
                    match = re.match(r"<([^>]+)>", _header(copy["headers"], "List-Unsubscribe"))
                    sink.tally.add(copy["to"], match.group(1) if match else None, copy)

            def _sendgrid(self, payload: dict) -> None:
                if not self.headers.get("Authorization", "").startswith("Bearer "):
                    error = "The provided authorization grant is invalid, expired, or revoked"
                    return self._json(401, {"errors": [{"message": error, "field": None, "help": None}]})
                personalizations = payload.get("personalizations") or []
                addresses = sum(len(p.get(kind, [])) for p in personalizations for kind in ("to", "cc", "bcc"))
                if not 1 <= len(personalizations) <= 1000 or addresses > 1000:
                    error = "The personalization block is limited to 1000 personalizations per API request."
                    return self._json(400, {"errors": [{"message": error, "field": "personalizations", "help": None}]})
                for index, personalization in enumerate(personalizations):
                    for number, to in enumerate(personalization.get("to", [])):
                        if to.get("email", "").lower() in sink.refuse:
                            error = {"message": "Does not contain a valid address.", "help": None}
                            error["field"] = f"personalizations.{index}.to.{number}.email"
                            return self._json(400, {"errors": [error]})
                self._tally(_sendgrid_copies(payload))
                self.send_response(202)
                self.send_header("X-Message-Id", uuid.uuid4().hex[:22])
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _brevo(self, payload: dict) -> None:
                if not self.headers.get("api-key"):
                    return self._json(401, {"code": "unauthorized", "message": "Key not found"})
                versions = payload.get("messageVersions")
                if versions is not None and (payload.get("to") or not 1 <= len(versions) <= 1000):
                    message = "messageVersions takes 1 to 1000 versions, and no outer to"
                    return self._json(400, {"code": "invalid_parameter", "message": message})
                copies = _brevo_copies(payload)
                if any(copy["to"].lower() in sink.refuse for copy in copies):
                    return self._json(400, {"code": "invalid_parameter", "message": "email is not valid in to"})
                self._tally(copies)
                ids = list(dict.fromkeys(copy["message_id"] for copy in copies))
                self._json(201, {"messageIds": ids} if versions is not None else {"messageId": ids[0]})

            def _mailjet(self, payload: dict) -> None:
                if not self.headers.get("Authorization", "").startswith("Basic "):
                    return self._json(401, {"ErrorMessage": "API key authentication/authorization failure"})
                messages = payload.get("Messages") or []
                if not 1 <= len(messages) <= 50:
                    error = {"ErrorIdentifier": str(uuid.uuid4()), "ErrorCode": "mj-0002", "StatusCode": 400}
                    return self._json(400, {**error, "ErrorMessage": "Messages takes 1 to 50 messages"})
                answers, sent = [], []
                for copies in _mailjet_copies(payload):
                    refused = [c["to"] for c in copies if c["to"].lower() in sink.refuse]
                    if refused:
                        error = {"ErrorIdentifier": str(uuid.uuid4()), "ErrorCode": "mj-0013", "StatusCode": 400}
                        message = f'"{refused[0]}" is an invalid email address.'
                        errors = [{**error, "ErrorMessage": message, "ErrorRelatedTo": ["To[0].Email"]}]
                        answers.append({"Status": "error", "Errors": errors})
                        continue
                    to = [
                        {
                            "Email": c["to"],
                            "MessageUUID": str(uuid.UUID(int=int(c["message_id"]))),
                            "MessageID": int(c["message_id"]),
                            "MessageHref": f"https://api.mailjet.com/v3/REST/message/{c['message_id']}",
                        }
                        for c in copies
                    ]
                    answers.append({"Status": "success", "CustomID": "", "To": to, "Cc": [], "Bcc": []})
                    sent += copies
                self._tally(sent)
                failed = any(a["Status"] == "error" for a in answers)
                self._json(400 if failed else 200, {"Messages": answers})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def reset(
        self,
        *,
        keep_messages: bool = False,
        fail_share: float = 0.0,
        timeout_share: float = 0.0,
        hang: float = 5.0,
        seed: int = 7,
    ) -> EspSink:
        """Forget every call and fault so far (a running sink can serve several tests); return the sink."""
        self.tally = Tally(keep_messages=keep_messages)
        self.fail_share = fail_share
        self.timeout_share = timeout_share
        self.hang = hang
        self.random = random.Random(seed)
        self.faults = Counter()
        self.posts = 0  # every API call received, whatever the answer
        self.throttle_calls = 0  # answer this many calls with 429 and Retry-After first
        self.retry_after = 1
        # Addresses the provider calls invalid: Mailjet fails that message
        # alone, Mailgun, SendGrid and Brevo refuse the whole call with a 400.
        self.refuse: set[str] = set()
        self.requests: list[dict] = []  # Mailgun calls as received (keep_messages): path, headers, fields
        self.answer_status = 0  # when set, Mailgun calls get this status and answer_body instead of "Queued"
        self.answer_body: dict = {}
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def anymail_settings(self, esp: str) -> dict[str, str]:
        """Return the anymail settings (ANYMAIL's keys) that point `esp`'s backend at this sink."""
        url = self.url
        return {
            "mailgun": {"MAILGUN_API_KEY": "key-sink", "MAILGUN_API_URL": f"{url}/v3"},
            "sendgrid": {"SENDGRID_API_KEY": "SG.sink-key", "SENDGRID_API_URL": f"{url}/v3/"},
            "brevo": {"BREVO_API_KEY": "xkeysib-sink", "BREVO_API_URL": f"{url}/v3/"},
            "mailjet": {
                "MAILJET_API_KEY": "public",
                "MAILJET_SECRET_KEY": "private",
                "MAILJET_API_URL": f"{url}/v3.1/",
            },
            "postmark": {"POSTMARK_SERVER_TOKEN": "sink-token", "POSTMARK_API_URL": f"{url}/"},
        }[esp]

    def anymail_env(self, esp: str) -> dict[str, str]:
        """Return the same settings as ANYMAIL_* environment variables, for worker processes."""
        return {f"ANYMAIL_{key}": value for key, value in self.anymail_settings(esp).items()}

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


_MG_VARIABLE = re.compile(r"%recipient\.([^%]+)%")


def _mailgun_recipients(fields: dict[str, list[str]]) -> list[tuple[str, str | None]]:
    """Return (recipient, their List-Unsubscribe URL) as Mailgun would fill in each copy's header."""
    variables = json.loads(fields.get("recipient-variables", ["{}"])[0])
    header = fields.get("h:List-Unsubscribe", [""])[0]
    out = []
    for address in fields.get("to", []):
        bare = address.split("<")[-1].rstrip(">").strip()
        personal = variables.get(bare, {})
        value = _MG_VARIABLE.sub(lambda m, p=personal: str(p.get(m.group(1), "")), header)
        match = re.match(r"<([^>]+)>", value)
        out.append((bare, match.group(1) if match else None))
    return out


def _multipart_fields_fast(content_type: str, body: bytes) -> dict[str, list[str]]:
    """Split a multipart/form-data body of text fields into {name: [values]} (C-speed byte splits)."""
    boundary = content_type.split("boundary=", 1)[1].strip().strip('"').encode()
    fields: dict[str, list[str]] = {}
    for part in body.split(b"--" + boundary)[1:]:
        if part.startswith(b"--"):
            break
        head, _, value = part.partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]*)"', head)
        if name:
            fields.setdefault(name.group(1).decode(), []).append(value[:-2].decode())
    return fields


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


def _header(headers: dict, name: str) -> str:
    return next((value for key, value in headers.items() if key.lower() == name.lower()), "")


def _sendgrid_copies(payload: dict) -> list[dict]:
    """Return one dict per copy SendGrid would send: substitutions replace their tags in subject and content."""
    content = {part["type"]: part["value"] for part in payload.get("content", [])}
    copies = []
    for personalization in payload["personalizations"]:
        substitutions = personalization.get("substitutions") or {}

        def fill(value: str, substitutions=substitutions) -> str:
            for tag, replacement in substitutions.items():
                value = value.replace(tag, replacement or "")
            return value

        headers = {**(payload.get("headers") or {}), **(personalization.get("headers") or {})}
        metadata = {**(payload.get("custom_args") or {}), **(personalization.get("custom_args") or {})}
        for to in personalization.get("to", []):
            copies.append(
                {
                    "to": to["email"],
                    "subject": fill(personalization.get("subject") or payload.get("subject", "")),
                    "headers": headers,
                    "text": fill(content.get("text/plain", "")),
                    "html": fill(content.get("text/html", "")),
                    "metadata": metadata,
                    "message_id": metadata.get("anymail_id", ""),
                    "request": payload,
                }
            )
    return copies


_BREVO_PARAM = re.compile(r"\{\{\s*params\.(\w+)\s*\}\}")


def _brevo_copies(payload: dict) -> list[dict]:
    """Return one dict per copy Brevo would send: each version's params rendered into subject and bodies."""
    copies = []
    for version in payload.get("messageVersions") or [{"to": payload.get("to", [])}]:
        params = {**(payload.get("params") or {}), **(version.get("params") or {})}

        def fill(value: str, params=params) -> str:
            return _BREVO_PARAM.sub(lambda m: str(params.get(m.group(1), "")), value)

        headers = {**(payload.get("headers") or {}), **(version.get("headers") or {})}
        message_id = f"<{time.strftime('%Y%m%d%H%M%S')}.{uuid.uuid4().int % 10**11}@smtp-relay.mailin.fr>"
        for to in version["to"]:
            copies.append(
                {
                    "to": to["email"],
                    "subject": fill(version.get("subject") or payload.get("subject", "")),
                    "headers": headers,
                    "text": fill(version.get("textContent") or payload.get("textContent", "")),
                    "html": fill(version.get("htmlContent") or payload.get("htmlContent", "")),
                    "metadata": json.loads(_header(headers, "X-Mailin-custom") or "{}"),
                    "message_id": message_id,
                    "request": payload,
                }
            )
    return copies


_MAILJET_VAR = re.compile(r'\{\{\s*var:(\w+)(?::"([^"]*)")?\s*\}\}')


def _mailjet_var(variables: dict, match: re.Match) -> str:
    default = match.group(2) if match.group(2) is not None else match.group(0)
    return str(variables.get(match.group(1), default))


def _mailjet_copies(payload: dict) -> list[list[dict]]:
    """Return, per message, one dict per copy Mailjet would send.

    Message properties override Globals, except Headers and Variables, which
    are merged. Variables are rendered only with TemplateLanguage on; an
    unknown variable without a default is left as it is.
    """
    defaults = payload.get("Globals") or {}
    messages = []
    for message in payload["Messages"]:
        merged = {**defaults, **message}
        headers = {**(defaults.get("Headers") or {}), **(message.get("Headers") or {})}
        variables = {**(defaults.get("Variables") or {}), **(message.get("Variables") or {})}
        if merged.get("TemplateLanguage"):
            fill = functools.partial(_MAILJET_VAR.sub, functools.partial(_mailjet_var, variables))
        else:
            fill = str
        copies = [
            {
                "to": to["Email"],
                "subject": fill(merged.get("Subject", "")),
                "headers": headers,
                "text": fill(merged.get("TextPart", "")),
                "html": fill(merged.get("HTMLPart", "")),
                "metadata": json.loads(merged.get("EventPayload") or "{}"),
                "message_id": str(uuid.uuid4().int >> 68),
                "request": payload,
            }
            for to in merged.get("To", [])
        ]
        messages.append(copies)
    return messages


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

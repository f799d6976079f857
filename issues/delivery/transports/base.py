"""The ways an issue leaves the building: SMTP, ESP batch APIs, or one call per message.

Each transport takes a batch of readers and reports one Outcome per
reader. A failure of the whole batch (connection refused, timeout, an ESP
answering 429 or 5xx) raises BatchDeferred, and every reader in it is
retried later; nothing is guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dwvlist.emails import sender_address
from issues.delivery.mime import header_encode
from issues.delivery.ratelimit import provider_pause
from issues.rendering import rendered_personalize

SENT = "sent"
TRANSIENT = "transient"
PERMANENT = "permanent"


@dataclass
class Recipient:
    delivery_id: int
    subscriber_id: int
    email: str
    message_id: str
    unsubscribe_url: str
    preferences_url: str
    headers: dict[str, str]  # List-* headers for this reader's list
    metadata: dict[str, str]


@dataclass
class Envelope:
    """What is the same for every reader of one issue."""

    issue_id: int
    subject: str
    html: str
    text: str
    from_email: str
    from_name: str
    reply_to: str
    extra_headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Outcome:
    status: str
    message_id: str = ""
    error: str = ""
    suppress: bool = False


class BatchDeferred(Exception):
    """The whole batch could not be sent now; retry it later."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class CallRefused(Exception):
    """The provider refused one API call as a whole (a 4xx about something in it); sent again, it is refused again."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class Transport:
    name = "base"
    max_batch = 500

    def send(self, *, envelope: Envelope, recipients: list[Recipient]) -> dict[int, Outcome]:
        raise NotImplementedError


def personal_parts(envelope: Envelope, recipient: Recipient) -> tuple[str, str]:
    links = {"unsubscribe_url": recipient.unsubscribe_url, "preferences_url": recipient.preferences_url}
    return rendered_personalize(envelope.text, **links), rendered_personalize(envelope.html, **links)


def http_failure(status: int | None, response, detail: str) -> BatchDeferred | None:
    """Return BatchDeferred for a provider answer worth retrying, None for a refusal or a success.

    Retried: no answer, 429 (after its Retry-After), 5xx, and refused
    credentials (401, 403), which an operator can fix without losing the send.
    """
    if status is None or status == 429 or status >= 500 or status in (401, 403):
        retry_after = None
        if status == 429 and response is not None:
            try:
                retry_after = float(response.headers.get("Retry-After", "") or 30)
            except ValueError:
                retry_after = 30.0
        return BatchDeferred(f"provider answered {status or 'nothing'}: {detail[:300]}", retry_after=retry_after)
    return None


def recipient_outcome(status, *, default_id: str) -> Outcome:
    state = getattr(status, "status", None) or "unknown"
    message_id = getattr(status, "message_id", None) or default_id
    if state in ("sent", "queued", "unknown"):
        return Outcome(SENT, message_id=str(message_id))
    if state in ("invalid", "rejected"):
        return Outcome(PERMANENT, error=f"provider {state} the address", suppress=True)
    return Outcome(TRANSIENT, error=f"provider reported {state}")


# Readers refused one by one, with nothing of the batch accepted, after which
# a refused call is taken to be refused for what all its readers share (the
# sender, the size), not for an address: the rest fail without more calls.
REFUSED_ALONE_LIMIT = 3


def calls_send(calls: list[list[Recipient]], send_call) -> dict[int, Outcome]:
    """Send a batch as several API calls; return every reader's outcome.

    If a call fails after earlier ones were accepted, the failure is not
    raised for the whole batch: only the readers not yet sent wait for a retry.
    A call the provider refuses (one malformed address fails a whole call)
    is split in halves and each sent again, so only the readers refused on
    their own fail: about two calls per level, log2(batch) levels.
    """
    outcomes: dict[int, Outcome] = {}
    pending = list(calls)
    accepted = refused_alone = 0
    while pending:
        call = pending.pop(0)
        try:
            answered = send_call(call)
        except BatchDeferred as exc:
            if not outcomes:
                raise
            if exc.retry_after:
                provider_pause(seconds=exc.retry_after)  # a 429 holds every worker, as for a whole batch
            for recipient in (r for rest in (call, *pending) for r in rest):
                outcomes.setdefault(recipient.delivery_id, Outcome(TRANSIENT, error=exc.reason[:1000]))
            break
        except CallRefused as exc:
            if len(call) > 1 and (accepted or refused_alone < REFUSED_ALONE_LIMIT):
                half = len(call) // 2
                pending[:0] = [call[:half], call[half:]]
                continue
            refused_alone += len(call) == 1
            rest = (call, *pending) if not accepted and refused_alone >= REFUSED_ALONE_LIMIT else (call,)
            for recipient in (r for part in rest for r in part):
                outcomes[recipient.delivery_id] = Outcome(PERMANENT, error=exc.error[:1000])
            if len(rest) > 1:
                break
            continue
        accepted += 1
        outcomes.update(answered)
    return outcomes


def from_header(envelope: Envelope) -> str:
    return sender_address(envelope.from_name, envelope.from_email)


def subject_header(envelope: Envelope) -> str:
    return header_encode(envelope.subject)

"""The ways an issue leaves the building: SMTP, ESP batch APIs, or one call per message.

Each transport takes a batch of readers and reports one Outcome per
reader. A failure of the whole batch (connection refused, timeout, an ESP
answering 429 or 5xx) raises BatchDeferred, and every reader in it is
retried later; nothing is guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from issues.delivery.mime import address_display, address_wire
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
    name: str = ""  # the reader's name, as they typed it, for the To header
    unsubscribe_mailto: str = ""  # the reader's own unsubscribe address, in List-Unsubscribe
    # The SMTP path's MAIL FROM for this copy (VERP, naming the delivery); "" sends as the list's from address.
    envelope_sender: str = ""
    # The reader's list records opens and clicks: their copy gets tracked links (SMTP path only).
    tracking: bool = False


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

    def __init__(self, reason: str, *, retry_after: float | None = None, credentials_refused: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.credentials_refused = credentials_refused  # an operator must fix the settings


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


def personal_parts(envelope: Envelope, recipient: Recipient, *, html: str | None = None) -> tuple[str, str]:
    """Return the reader's text and HTML parts (`html`: another form of the envelope's, e.g. marked for tracking)."""
    links = {"unsubscribe_url": recipient.unsubscribe_url, "preferences_url": recipient.preferences_url}
    html = envelope.html if html is None else html
    return rendered_personalize(envelope.text, **links), rendered_personalize(html, **links)


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
        reason = f"provider answered {status or 'nothing'}: {detail[:300]}"
        return BatchDeferred(reason, retry_after=retry_after, credentials_refused=status in (401, 403))
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
    """Return the From address as Unicode text, for Django's and anymail's own encoders."""
    return address_display(envelope.from_name, envelope.from_email)


def to_header(recipient: Recipient) -> str:
    """Return the reader's address (its domain in IDNA form) with their name, for Django's and anymail's encoders."""
    return address_display(recipient.name, address_wire(recipient.email))


def recipients_on_the_wire(recipients: list[Recipient]) -> tuple[list[Recipient], dict[int, Outcome]]:
    """Return the readers with their addresses as they go on the wire (IDNA domains), and those that cannot go.

    A provider's API names readers by the address it was given: giving it
    the wire form keeps its answers and merge data keyed alike.
    """
    ready, failed = [], {}
    for recipient in recipients:
        try:
            wire = address_wire(recipient.email)
        except ValueError as exc:
            failed[recipient.delivery_id] = build_failure(exc)
            continue
        ready.append(recipient if wire == recipient.email else replace(recipient, email=wire))
    return ready, failed


def build_failure(exc: Exception) -> Outcome:
    """Return the permanent failure of a reader whose copy could not be built, with the reason."""
    return Outcome(PERMANENT, error=f"could not build this reader's copy: {type(exc).__name__}: {exc}"[:1000])

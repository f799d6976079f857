"""ESP batch sending through anymail: real backends posting to the loopback EspSink.

SendGrid, Brevo and Mailjet each get one API call per batch (within the
ESP's per-call limit), and every reader's copy, as the ESP would render it,
carries that reader's own links, List-* headers, Message-ID and metadata.
"""

from __future__ import annotations

import json
import random

import pytest
from django.utils import timezone

from dwvlist.redis import SEND_PAUSE, redis_client
from issues import services
from issues.delivery import batch, ledger, ratelimit
from issues.delivery.transports import transport_for_settings
from issues.delivery.transports.anymail_batch import AnymailBatchTransport
from issues.delivery.transports.base import (
    PERMANENT,
    SENT,
    TRANSIENT,
    BatchDeferred,
    Envelope,
    Outcome,
    Recipient,
    calls_send,
)
from issues.delivery.transports.django_backend import DjangoBackendTransport
from issues.models import Delivery, Issue
from issues.rendering import PREFERENCES_URL, UNSUBSCRIBE_URL
from subscriptions.models import Subscriber
from subscriptions.tokens import unsubscribe_token_read
from tests.fakes.sinks import EspSink
from tests.issues.ledger_helpers import issue_make, list_make, readers_make, recipients_unsaved

pytestmark = pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning")

# The ESPs sent in batches through anymail, their backends pointed at the sink.
ESPS = ("sendgrid", "brevo", "mailjet")
PLACEHOLDER = {
    "sendgrid": "-unsubscribe_url-",
    "brevo": "{{ params.unsubscribe_url }}",
    "mailjet": "{{var:unsubscribe_url}}",
}
LIMIT = {"sendgrid": 1000, "brevo": 1000, "mailjet": 50}

TEXT = (
    "Plant closings\n==============\n\nFirst paragraph, https://example.org/a.\n\n-- \n"
    f"Unsubscribe: {UNSUBSCRIBE_URL}\nPreferences: {PREFERENCES_URL}\n"
)
HTML = (
    '<html><body><h1>Plant closings</h1><p>First paragraph, <a href="https://example.org/a">link</a>.</p>'
    f'<p><a href="{UNSUBSCRIBE_URL}">Unsubscribe</a> · <a href="{PREFERENCES_URL}">Manage your preferences</a></p>'
    "</body></html>"
)
MAILTO = "<mailto:news+unsubscribe@lists.example.org?subject=unsubscribe>"


@pytest.fixture
def sink(settings, _running_sink):
    """Return the module's EspSink with no faults and an empty tally that keeps every copy."""
    settings.SITE_URL = "https://list.example.org"
    return _running_sink.reset(keep_messages=True)


def _use(settings, esp: str, sink: EspSink, **extra) -> None:
    settings.EMAIL_TRANSPORT = esp
    settings.EMAIL_BACKEND = f"anymail.backends.{esp}.EmailBackend"
    settings.ANYMAIL = sink.anymail_settings(esp) | extra


def _envelope(*, text: str = TEXT, html: str = HTML) -> Envelope:
    return Envelope(
        issue_id=7,
        subject="Plant closings",
        html=html,
        text=text,
        from_email="news@lists.example.org",
        from_name="Detroit Workers' Voice",
        reply_to="editors@example.org",
    )


def _readers(count: int, *, list_name: str = "Detroit Workers' Voice") -> list[Recipient]:
    return recipients_unsaved(count, list_name=list_name)


def _calls(sink: EspSink) -> list[list[dict]]:
    """Return the kept copies grouped by the API call that carried them, in order."""
    calls: dict[int, list[dict]] = {}
    for copy in sink.tally.messages:
        calls.setdefault(id(copy["request"]), []).append(copy)
    return list(calls.values())


def _personal(content: str, reader: Recipient) -> str:
    return content.replace(UNSUBSCRIBE_URL, reader.unsubscribe_url).replace(PREFERENCES_URL, reader.preferences_url)


def _lower(headers: dict) -> dict:
    return {key.lower(): value for key, value in headers.items()}


@pytest.mark.parametrize("esp", ESPS)
def test_batch_esps_get_the_batch_transport_with_their_limit_and_ses_one_call_per_message(settings, esp):
    settings.EMAIL_TRANSPORT = esp
    transport = transport_for_settings()
    assert isinstance(transport, AnymailBatchTransport)
    assert transport.max_batch == LIMIT[esp]
    settings.EMAIL_TRANSPORT, settings.EMAIL_BACKEND = "amazon_ses", "anymail.backends.amazon_ses.EmailBackend"
    assert isinstance(transport_for_settings(), DjangoBackendTransport)


@pytest.mark.parametrize(("esp", "sizes"), [("sendgrid", [120]), ("brevo", [120]), ("mailjet", [50, 50, 20])])
def test_one_call_per_batch_and_every_copy_carries_its_readers_links_headers_and_metadata(settings, sink, esp, sizes):
    _use(settings, esp, sink)
    readers = _readers(120)

    outcomes = AnymailBatchTransport(esp).send(envelope=_envelope(), recipients=readers)

    tally = sink.tally
    assert tally.calls == len(sizes)
    assert [len(call) for call in _calls(sink)] == sizes
    assert all(PLACEHOLDER[esp] in json.dumps(call[0]["request"]) for call in _calls(sink))
    assert tally.unique == 120 and tally.duplicates == 0
    assert tally.missing_unsubscribe == 0 and tally.shared_unsubscribe == 0
    copies = {copy["to"]: copy for copy in tally.messages}
    for reader in readers:
        copy = copies[reader.email]
        headers = _lower(copy["headers"])
        assert headers["list-unsubscribe"] == f"<{reader.unsubscribe_url}>, {MAILTO}"
        assert headers["list-unsubscribe-post"] == "List-Unsubscribe=One-Click"
        assert headers["list-id"] == '"Detroit Workers\' Voice" <news.list.example.org>'
        assert headers["list-archive"] == "<https://list.example.org/archive/news/>"
        assert headers["precedence"] == "bulk"
        assert headers["message-id"] == f"<{reader.message_id}>"
        assert copy["subject"] == "Plant closings"
        assert copy["text"] == _personal(TEXT, reader)
        assert copy["html"] == _personal(HTML, reader)
        # SendGrid's custom_args also carry anymail's own id for its webhooks.
        extra = {"anymail_id": copy["message_id"]} if esp == "sendgrid" else {}
        assert copy["metadata"] == {**reader.metadata, **extra}
        assert outcomes[reader.delivery_id].status == SENT
        assert outcomes[reader.delivery_id].message_id == copy["message_id"]
    assert len({outcome.message_id for outcome in outcomes.values()}) == 120


@pytest.mark.parametrize("esp", ESPS)
def test_a_provider_503_defers_the_whole_batch(settings, sink, esp):
    _use(settings, esp, sink)
    sink.fail_share = 1.0
    with pytest.raises(BatchDeferred) as caught:
        AnymailBatchTransport(esp).send(envelope=_envelope(), recipients=_readers(10))
    assert caught.value.reason.startswith("provider answered 503")
    assert caught.value.retry_after is None
    assert sink.faults["503"] == 1 and sink.tally.total == 0


@pytest.mark.parametrize("esp", ESPS)
def test_a_provider_429_defers_the_batch_for_its_retry_after_then_it_goes_out(settings, sink, esp):
    _use(settings, esp, sink)
    sink.throttle_calls, sink.retry_after = 1, 7
    readers = _readers(10)
    transport = AnymailBatchTransport(esp)
    with pytest.raises(BatchDeferred) as caught:
        transport.send(envelope=_envelope(), recipients=readers)
    assert caught.value.reason.startswith("provider answered 429")
    assert caught.value.retry_after == 7.0
    assert sink.tally.total == 0

    outcomes = transport.send(envelope=_envelope(), recipients=readers)
    assert {outcome.status for outcome in outcomes.values()} == {SENT}
    assert sink.tally.unique == 10 and sink.tally.duplicates == 0 and sink.tally.calls == 1


@pytest.mark.parametrize("esp", ESPS)
def test_a_provider_timing_out_defers_the_whole_batch(settings, sink, esp):
    _use(settings, esp, sink, REQUESTS_TIMEOUT=0.1)
    sink.timeout_share, sink.hang = 1.0, 0.3
    with pytest.raises(BatchDeferred) as caught:
        AnymailBatchTransport(esp).send(envelope=_envelope(), recipients=_readers(5))
    assert caught.value.reason.startswith("provider answered nothing")
    assert caught.value.retry_after is None
    assert sink.faults["timeout"] == 1


def test_when_a_later_call_of_the_batch_fails_only_the_unsent_readers_wait(settings, sink):
    _use(settings, "mailjet", sink)
    # A seed whose first roll passes and second roll fails: the sink answers the first call, then 503.
    seed = next(s for s in range(1000) if (r := random.Random(s)).random() >= 0.5 and r.random() < 0.5)
    sink.fail_share, sink.random = 0.5, random.Random(seed)
    readers = _readers(120)
    outcomes = AnymailBatchTransport("mailjet").send(envelope=_envelope(), recipients=readers)
    assert [outcomes[r.delivery_id].status for r in readers] == [SENT] * 50 + [TRANSIENT] * 70
    assert all(outcomes[r.delivery_id].error.startswith("provider answered 503") for r in readers[50:])
    assert sink.tally.unique == 50 and sink.faults["503"] == 1


def test_a_429_after_some_calls_were_accepted_still_pauses_every_worker():
    readers = _readers(3)

    def send_call(call):
        if call[0] is readers[0]:
            return {readers[0].delivery_id: Outcome(SENT, message_id="m0")}
        raise BatchDeferred("provider answered 429: slow down", retry_after=30)

    redis_client().delete(SEND_PAUSE)
    try:
        outcomes = calls_send([[r] for r in readers], send_call)
        assert [outcomes[r.delivery_id].status for r in readers] == [SENT, TRANSIENT, TRANSIENT]
        assert ratelimit.provider_pause_remaining() > 20
    finally:
        redis_client().delete(SEND_PAUSE)  # no other test waits it out


def test_a_message_mailjet_refuses_is_reported_for_that_reader_only(settings, sink):
    _use(settings, "mailjet", sink)
    sink.refuse = {"reader0003@example.org"}
    readers = _readers(10)
    outcomes = AnymailBatchTransport("mailjet").send(envelope=_envelope(), recipients=readers)
    assert outcomes[readers[3].delivery_id].status == TRANSIENT
    assert outcomes[readers[3].delivery_id].error == "provider reported failed"
    assert {outcomes[r.delivery_id].status for r in readers if r is not readers[3]} == {SENT}
    assert sink.tally.unique == 9 and "reader0003@example.org" not in sink.tally.recipients


@pytest.mark.parametrize(
    ("esp", "words"), [("sendgrid", "Does not contain a valid address."), ("brevo", "email is not valid in to")]
)
def test_an_address_that_makes_the_provider_refuse_the_call_fails_alone(settings, sink, esp, words):
    _use(settings, esp, sink)
    readers = _readers(10)
    sink.refuse = {readers[3].email}
    outcomes = AnymailBatchTransport(esp).send(envelope=_envelope(), recipients=readers)

    refused = outcomes[readers[3].delivery_id]
    assert refused.status == PERMANENT and words in refused.error and not refused.suppress
    assert {outcomes[r.delivery_id].status for r in readers if r is not readers[3]} == {SENT}
    assert sink.tally.unique == sink.tally.total == 9 and readers[3].email not in sink.tally.recipients
    # 10, then 5 and 5, then 2 and 3 of the first half, then 1 and 2, then 1 and 1.
    assert sink.posts == 9


@pytest.mark.parametrize("esp", ["brevo", "mailjet"])
def test_an_article_with_template_syntax_skips_the_esp_template_engine(settings, sink, esp):
    _use(settings, esp, sink)
    text = TEXT.replace("First paragraph", "Write {{ name }} and {% if %} literally")
    html = HTML.replace("First paragraph", "Write {{ name }} and {% if %} literally")
    readers = _readers(4)
    outcomes = AnymailBatchTransport(esp).send(envelope=_envelope(text=text, html=html), recipients=readers)
    assert sink.tally.calls == 4  # one plain message per reader
    assert {outcome.status for outcome in outcomes.values()} == {SENT}
    copies = {copy["to"]: copy for copy in sink.tally.messages}
    for reader in readers:
        copy = copies[reader.email]
        assert copy["text"] == _personal(text, reader) and copy["html"] == _personal(html, reader)
        assert _lower(copy["headers"])["list-unsubscribe"] == f"<{reader.unsubscribe_url}>, {MAILTO}"
        assert "TemplateLanguage" not in json.dumps(copy["request"])


def test_brevo_gets_an_ascii_list_id_when_the_list_name_is_not(settings, sink):
    _use(settings, "brevo", sink)
    readers = _readers(3, list_name="Voix des travailleurs — Détroit")
    outcomes = AnymailBatchTransport("brevo").send(envelope=_envelope(), recipients=readers)
    assert {outcome.status for outcome in outcomes.values()} == {SENT}
    assert [_lower(copy["headers"])["list-id"] for copy in sink.tally.messages] == ["<news.list.example.org>"] * 3


@pytest.mark.django_db(transaction=True)
def test_an_issue_on_mailjet_goes_out_through_the_engine_in_calls_of_at_most_50(settings, sink):
    _use(settings, "mailjet", sink)
    settings.SEND_RETRY_BASE_SECONDS = 0
    news = list_make("news")
    readers_make(news, 120)
    issue = issue_make(news)
    Issue.objects.filter(pk=issue.pk).update(status="sending", started_at=timezone.now())
    issue.refresh_from_db()
    services.issue_freeze(issue=issue)
    ledger.ledger_write(issue=issue)
    for _ in range(20):
        if batch.batch_send(issue_id=issue.pk).done:
            break

    assert [len(call) for call in _calls(sink)] == [50, 50, 20]
    assert sink.tally.unique == 120 and sink.tally.duplicates == 0
    assert Delivery.objects.filter(issue=issue, status="sent").count() == 120
    for copy in sink.tally.messages:
        subscriber = Subscriber.objects.get(email=copy["to"])
        unsubscribe, mailto = (part.strip(" <>") for part in _lower(copy["headers"])["list-unsubscribe"].split(","))
        claim = unsubscribe_token_read(unsubscribe.rsplit("/u/", 1)[1].rstrip("/"))
        assert (claim.subscriber_id, claim.list_id, claim.issue_id) == (subscriber.pk, news.pk, issue.pk)
        assert mailto == "mailto:news+unsubscribe@lists.example.org?subject=unsubscribe"
        assert f"Unsubscribe: {unsubscribe}\n" in copy["text"] and f'href="{unsubscribe}"' in copy["html"]
        assert "{{" not in copy["text"] and "{{" not in copy["html"] and "%%" not in copy["html"]
        assert copy["metadata"]["subscriber_id"] == str(subscriber.pk)
        assert copy["metadata"]["issue_id"] == str(issue.pk)

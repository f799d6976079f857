"""Mailgun's batch API as the provider sees it: MailgunBatchTransport against the loopback EspSink.

Each batch is one POST of a multipart form. The sink keeps every call's
fields and headers; `_mailgun_copies` then does what Mailgun does with them
(fills each reader's recipient-variables into `%recipient.KEY%` in the
bodies, the h: headers and the v: custom data), so the tests read each
reader's copy as it would leave Mailgun.
"""

from __future__ import annotations

import base64
import json
import re
import time
from email.headerregistry import HeaderRegistry

import pytest

from issues.delivery import messages
from issues.delivery.transports import transport_for_settings
from issues.delivery.transports.base import PERMANENT, SENT, BatchDeferred, Envelope, Recipient
from issues.delivery.transports.mailgun import MailgunBatchTransport
from issues.feedback.events import delivery_find
from issues.models import Delivery, Issue, SentMessage
from issues.rendering import PREFERENCES_URL, UNSUBSCRIBE_URL, rendered_personalize
from subscriptions.tokens import unsubscribe_token_read
from tests.fakes.sinks import _free_port
from tests.issues.ledger_helpers import (
    issue_drain,
    issue_make,
    issue_start_here,
    list_make,
    readers_make,
    recipients_unsaved,
)

KEY = "key-0123456789abcdef"
SITE = "https://list.example.org"
TITLE = "Grève à l'usine : ce qu'il faut faire"
_VARIABLE = re.compile(r"%recipient\.([^%]+)%")


@pytest.fixture
def sink(settings, _running_sink):
    """Return the module's EspSink with no faults, keeping every call, and the settings pointing at it."""
    esp = _running_sink.reset(keep_messages=True)
    settings.SITE_URL = SITE
    settings.EMAIL_TRANSPORT = "mailgun"
    settings.ANYMAIL = {"MAILGUN_API_KEY": KEY, "MAILGUN_API_URL": f"{esp.url}/v3"}
    settings.SEND_RETRY_BASE_SECONDS = 0
    settings.SEND_RATE_LIMIT = 0.0
    return esp


# --- What Mailgun does with a call --------------------------------------------------------


def _fill(value: str, variables: dict) -> str:
    """Replace %recipient.KEY% with the reader's value; an unknown key stays as it is (and shows)."""
    return _VARIABLE.sub(lambda m: str(variables[m.group(1)]) if m.group(1) in variables else m.group(0), value)


def _mailgun_copies(request: dict) -> dict[str, dict]:
    """Return each reader's copy as Mailgun would send it: {address: {subject, text, html, headers, variables}}.

    A header left empty by its substitution is no header (the reader's list
    does not have it).
    """
    fields = request["fields"]
    repeated = [name for name, values in fields.items() if len(values) > 1 and name != "to"]
    assert not repeated, f"fields sent more than once: {repeated}"
    single = {name: values[0] for name, values in fields.items() if name != "to"}
    recipient_variables = json.loads(single["recipient-variables"])
    copies = {}
    for address in fields["to"]:
        personal = recipient_variables[address]
        headers = {name[2:]: _fill(value, personal) for name, value in single.items() if name.startswith("h:")}
        copies[address] = {
            "from": _fill(single["from"], personal),
            "subject": _fill(single["subject"], personal),
            "text": _fill(single["text"], personal),
            "html": _fill(single["html"], personal),
            "headers": {name: value for name, value in headers.items() if value},
            "variables": {name[2:]: _fill(value, personal) for name, value in single.items() if name.startswith("v:")},
        }
    return copies


def _everything(copy: dict) -> str:
    return json.dumps(copy, ensure_ascii=False)


# --- Building batches ---------------------------------------------------------------------


def _batch(issue: Issue) -> tuple[Envelope, list[Recipient]]:
    """Return the issue's envelope and every ledger row as a reader, built as batch_send builds them."""
    rows = Delivery.objects.filter(issue=issue).select_related("mailing_list").order_by("id")
    recipients = [
        messages.recipient_for(
            issue=issue,
            delivery_id=row.pk,
            subscriber_id=row.subscriber_id,
            email=row.email,
            mailing_list=row.mailing_list,
        )
        for row in rows
    ]
    return messages.envelope_for(issue, messages.issue_primary_list(issue)), recipients


def _other_readers() -> None:
    """Create readers of a list the issue does not go to, so subscriber ids and delivery ids differ."""
    readers_make(list_make("other"), 7, start=900)


def _envelope() -> Envelope:
    return Envelope(
        issue_id=7,
        subject="Plant closings",
        html=f'<p>Read on.</p><p><a href="{UNSUBSCRIBE_URL}">Unsubscribe</a> <a href="{PREFERENCES_URL}">Prefs</a></p>',
        text=f"Read on.\n\nUnsubscribe: {UNSUBSCRIBE_URL}\nPreferences: {PREFERENCES_URL}\n",
        from_email="news@lists.example.org",
        from_name="Detroit Workers' Voice",
        reply_to="editors@example.org",
    )


def _readers(count: int) -> list[Recipient]:
    """Return readers of an unsaved list, for the tests that need no database."""
    return recipients_unsaved(count)


def _mailto(slug: str) -> str:
    return f"<mailto:{slug}+unsubscribe@lists.example.org?subject=unsubscribe>"


def _check_own_copy(copy: dict, reader: Recipient, envelope: Envelope, *, issue_id: int, list_id: int) -> None:
    """Assert the copy carries the reader's own links, List-Unsubscribe, Message-Id and ids, and nothing unfilled."""
    links = {"unsubscribe_url": reader.unsubscribe_url, "preferences_url": reader.preferences_url}
    assert copy["text"] == rendered_personalize(envelope.text, **links)
    assert copy["html"] == rendered_personalize(envelope.html, **links)
    assert reader.unsubscribe_url in copy["text"] and reader.unsubscribe_url in copy["html"]
    assert "%recipient" not in _everything(copy) and "%%" not in _everything(copy)
    headers = copy["headers"]
    unsubscribe, mailto = [part.strip() for part in headers["List-Unsubscribe"].split(",")]
    assert unsubscribe == f"<{reader.unsubscribe_url}>"
    assert unsubscribe.startswith(f"<{SITE}/u/")
    claim = unsubscribe_token_read(unsubscribe.strip("<>").rsplit("/u/", 1)[1].rstrip("/"))
    assert (claim.subscriber_id, claim.list_id, claim.issue_id) == (reader.subscriber_id, list_id, issue_id)
    assert mailto.startswith("<mailto:") and mailto.endswith("+unsubscribe@lists.example.org?subject=unsubscribe>")
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert headers["Precedence"] == "bulk"
    assert headers["Reply-To"] == envelope.reply_to
    assert headers["Message-Id"] == f"<{reader.message_id}>"
    assert re.fullmatch(
        rf"<dwv\.{issue_id}\.{reader.subscriber_id}\.[0-9a-f]{{12}}@lists\.example\.org>", headers["Message-Id"]
    )
    assert copy["variables"] == {
        "issue_id": str(issue_id),
        "delivery_id": str(reader.delivery_id),
        "subscriber_id": str(reader.subscriber_id),
    }


# --- One batch, one list ------------------------------------------------------------------


@pytest.mark.django_db
def test_a_batch_is_one_call_and_each_copy_carries_its_readers_own_links_headers_and_ids(sink):
    _other_readers()
    voix = list_make("voix", name="Voix ouvrière")
    readers_make(voix, 3)
    issue = issue_make(voix, title=TITLE)
    issue_start_here(issue)
    envelope, recipients = _batch(issue)
    assert all(r.delivery_id != r.subscriber_id for r in recipients)  # so the two cannot be confused

    outcomes = transport_for_settings().send(envelope=envelope, recipients=recipients)

    [request] = sink.requests
    assert request["path"] == "/v3/lists.example.org/messages"
    assert request["headers"]["Authorization"] == "Basic " + base64.b64encode(f"api:{KEY}".encode()).decode()
    assert request["headers"]["Content-Type"].startswith("multipart/form-data; boundary=")
    fields = request["fields"]
    assert fields["to"] == [r.email for r in recipients] and len(set(fields["to"])) == 3
    assert fields["from"] == ["Detroit Workers' Voice <voix@lists.example.org>"]
    assert fields["subject"] == [TITLE]
    # What is the same for every reader once their URL is templated out goes once.
    assert fields["h:List-Unsubscribe"] == [f"<%recipient.unsubscribe_url%>, {_mailto('voix')}"]
    assert fields["h:List-Id"] == ['"Voix ouvrière" <voix.list.example.org>']
    assert sorted(json.loads(fields["recipient-variables"][0])) == sorted(r.email for r in recipients)

    copies = _mailgun_copies(request)
    assert sorted(copies) == sorted(r.email for r in recipients)
    for reader in recipients:
        copy = copies[reader.email]
        assert copy["from"] == "Detroit Workers' Voice <voix@lists.example.org>"
        assert copy["subject"] == TITLE
        _check_own_copy(copy, reader, envelope, issue_id=issue.pk, list_id=voix.pk)
        assert copy["headers"]["List-Unsubscribe"].endswith(f", {_mailto('voix')}")
        assert copy["headers"]["List-Id"] == '"Voix ouvrière" <voix.list.example.org>'
        assert copy["headers"]["List-Archive"] == f"<{SITE}/archive/voix/>"
        row = Delivery.objects.get(pk=reader.delivery_id)
        assert (row.subscriber_id, row.email, row.issue_id) == (reader.subscriber_id, reader.email, issue.pk)
    assert len({copy["headers"]["Message-Id"] for copy in copies.values()}) == 3
    assert len({copy["headers"]["List-Unsubscribe"] for copy in copies.values()}) == 3

    answer_id = request["answer"]["id"]
    assert re.fullmatch(r"<[0-9a-f]{32}@lists\.example\.org>", answer_id)
    assert {d: (o.status, o.message_id) for d, o in outcomes.items()} == {
        r.delivery_id: (SENT, answer_id) for r in recipients
    }
    tally = sink.tally
    assert tally.calls == 1 and tally.unique == 3 and tally.duplicates == 0
    assert tally.missing_unsubscribe == 0 and tally.shared_unsubscribe == 0


def test_the_call_goes_to_mailgun_sender_domain_when_it_is_set(settings, sink):
    settings.ANYMAIL = {**settings.ANYMAIL, "MAILGUN_SENDER_DOMAIN": "mg.example.net"}
    readers = _readers(2)

    outcomes = MailgunBatchTransport().send(envelope=_envelope(), recipients=readers)

    [request] = sink.requests
    assert request["path"] == "/v3/mg.example.net/messages"
    assert request["fields"]["from"] == ["Detroit Workers' Voice <news@lists.example.org>"]
    assert {o.status for o in outcomes.values()} == {SENT}
    assert request["answer"]["id"].endswith("@mg.example.net>")


def test_a_non_ascii_sender_name_is_encoded_and_reads_back(sink):
    envelope = _envelope()
    envelope.from_name = "Voix ouvrière"
    MailgunBatchTransport().send(envelope=envelope, recipients=_readers(1))

    [value] = sink.requests[0]["fields"]["from"]
    assert value.isascii()
    parsed = HeaderRegistry()("From", value)
    assert [(a.display_name, a.addr_spec) for a in parsed.addresses] == [("Voix ouvrière", "news@lists.example.org")]


# --- One batch, two lists -------------------------------------------------------------------


@pytest.mark.django_db
def test_readers_of_two_lists_in_one_batch_each_get_their_own_lists_headers(sink):
    _other_readers()
    news = list_make("news", name="News from the plants")
    voix = list_make("voix", name="Voix ouvrière")
    news_ids = readers_make(news, 2)
    voix_ids = readers_make(voix, 2, start=100)
    issue = issue_make(news, voix, title=TITLE)
    issue_start_here(issue)
    envelope, recipients = _batch(issue)
    assert len(recipients) == 4

    outcomes = MailgunBatchTransport().send(envelope=envelope, recipients=recipients)

    [request] = sink.requests
    fields = request["fields"]
    assert request["path"] == "/v3/lists.example.org/messages"  # the primary (first) list's sender
    # Headers that differ from list to list go per reader; the rest once.
    assert fields["h:List-Id"] == ["%recipient.h:List-Id%"]
    assert fields["h:List-Unsubscribe"] == ["%recipient.h:List-Unsubscribe%"]
    assert fields["h:List-Archive"] == ["%recipient.h:List-Archive%"]
    assert fields["h:List-Unsubscribe-Post"] == ["List-Unsubscribe=One-Click"]
    assert fields["h:Precedence"] == ["bulk"]
    copies = _mailgun_copies(request)
    lists = {**dict.fromkeys(news_ids, news), **dict.fromkeys(voix_ids, voix)}
    for reader in recipients:
        own = lists[reader.subscriber_id]
        copy = copies[reader.email]
        assert copy["from"] == "Detroit Workers' Voice <news@lists.example.org>"
        assert copy["subject"] == TITLE
        _check_own_copy(copy, reader, envelope, issue_id=issue.pk, list_id=own.pk)
        assert copy["headers"]["List-Unsubscribe"] == f"<{reader.unsubscribe_url}>, {_mailto(own.slug)}"
        assert copy["headers"]["List-Id"] == f'"{own.name}" <{own.slug}.list.example.org>'
        assert copy["headers"]["List-Archive"] == f"<{SITE}/archive/{own.slug}/>"
    assert {o.status for o in outcomes.values()} == {SENT}
    assert sink.tally.unique == 4 and sink.tally.shared_unsubscribe == 0


@pytest.mark.django_db
def test_a_header_only_the_second_list_has_reaches_that_lists_readers(sink):
    quiet = list_make("quiet", name="No archive", archive_enabled=False)
    news = list_make("news")
    quiet_ids = readers_make(quiet, 2)
    readers_make(news, 2, start=100)
    issue = issue_make(quiet, news)
    issue_start_here(issue)
    envelope, recipients = _batch(issue)
    assert recipients[0].subscriber_id in quiet_ids  # the batch starts with a reader of the list without archive

    outcomes = MailgunBatchTransport().send(envelope=envelope, recipients=recipients)

    # One call per set of list headers: no reader gets an empty List-Archive.
    assert len(sink.requests) == 2
    assert {"h:List-Archive" in r["fields"] for r in sink.requests} == {True, False}
    copies = {**_mailgun_copies(sink.requests[0]), **_mailgun_copies(sink.requests[1])}
    for reader in recipients:
        expected = None if reader.subscriber_id in quiet_ids else f"<{SITE}/archive/news/>"
        assert copies[reader.email]["headers"].get("List-Archive") == expected
    assert {o.status for o in outcomes.values()} == {SENT} and len(outcomes) == 4


# --- Outcomes ---------------------------------------------------------------------------------


def test_accepted_every_reader_is_sent_with_the_calls_id(sink):
    readers = _readers(5)
    outcomes = MailgunBatchTransport().send(envelope=_envelope(), recipients=readers)
    answer_id = sink.requests[0]["answer"]["id"]
    assert {d: (o.status, o.message_id, o.error) for d, o in outcomes.items()} == {
        r.delivery_id: (SENT, answer_id, "") for r in readers
    }
    copies = _mailgun_copies(sink.requests[0])
    for reader in readers:
        _check_own_copy(copies[reader.email], reader, _envelope(), issue_id=7, list_id=3)


def test_a_429_defers_the_batch_for_its_retry_after_then_it_goes_out(sink):
    sink.throttle_calls, sink.retry_after = 1, 7
    readers = _readers(3)
    transport = MailgunBatchTransport()
    with pytest.raises(BatchDeferred) as caught:
        transport.send(envelope=_envelope(), recipients=readers)
    assert caught.value.retry_after == 7
    assert caught.value.reason.startswith("provider answered 429")
    assert sink.faults["429"] == 1 and sink.tally.total == 0

    outcomes = transport.send(envelope=_envelope(), recipients=readers)
    assert {o.status for o in outcomes.values()} == {SENT} and sink.tally.unique == 3


def test_a_503_defers_the_batch(sink):
    sink.fail_share = 1.0
    with pytest.raises(BatchDeferred) as caught:
        MailgunBatchTransport().send(envelope=_envelope(), recipients=_readers(3))
    assert caught.value.reason.startswith("provider answered 503")
    assert caught.value.retry_after is None
    assert sink.faults["503"] == 1 and sink.tally.total == 0


@pytest.mark.parametrize("status", [401, 403, 500, 502])
def test_a_refused_key_or_a_server_error_defers_the_batch(sink, status):
    sink.answer_status, sink.answer_body = status, {"message": "Forbidden"}
    with pytest.raises(BatchDeferred) as caught:
        MailgunBatchTransport().send(envelope=_envelope(), recipients=_readers(3))
    assert caught.value.reason.startswith(f"provider answered {status}")
    assert len(sink.requests) == 1 and sink.tally.total == 0


def test_a_closed_port_defers_the_batch_at_once(settings, sink):
    settings.ANYMAIL = {**settings.ANYMAIL, "MAILGUN_API_URL": f"http://127.0.0.1:{_free_port()}/v3"}
    started = time.monotonic()
    with pytest.raises(BatchDeferred) as caught:
        MailgunBatchTransport().send(envelope=_envelope(), recipients=_readers(3))
    assert time.monotonic() - started < 10  # refused at once, not retried until some timeout
    assert caught.value.reason.startswith("provider answered nothing")
    assert caught.value.retry_after is None


def test_a_timeout_defers_the_batch_and_the_next_call_goes_out(settings, sink):
    settings.ANYMAIL = {**settings.ANYMAIL, "REQUESTS_TIMEOUT": 0.5}
    sink.timeout_share, sink.hang = 1.0, 30
    readers = _readers(3)
    transport = MailgunBatchTransport()
    started = time.monotonic()
    with pytest.raises(BatchDeferred) as caught:
        transport.send(envelope=_envelope(), recipients=readers)
    assert time.monotonic() - started < 15  # gave up after the timeout, not after the sink's 30 s
    assert caught.value.reason.startswith("provider answered nothing")
    assert sink.faults["timeout"] == 1 and sink.tally.total == 0

    sink.timeout_share = 0.0
    outcomes = transport.send(envelope=_envelope(), recipients=readers)
    assert {o.status for o in outcomes.values()} == {SENT} and sink.tally.unique == 3


def test_a_400_fails_every_reader_permanently_with_the_providers_words(sink):
    words = "'to' parameter is not a valid address. please check documentation"
    sink.answer_status, sink.answer_body = 400, {"message": words}
    readers = _readers(3)
    outcomes = MailgunBatchTransport().send(envelope=_envelope(), recipients=readers)
    assert set(outcomes) == {r.delivery_id for r in readers}
    for outcome in outcomes.values():
        assert outcome.status == PERMANENT and not outcome.message_id and not outcome.suppress
        assert "(400)" in outcome.error and words in outcome.error
    assert sink.tally.total == 0
    assert sink.posts == 5  # the three, then one and two, then the two one by one


def test_one_refused_address_fails_only_its_reader_and_the_rest_go_once(sink):
    readers = _readers(1000)
    sink.refuse = {readers[617].email}
    outcomes = MailgunBatchTransport().send(envelope=_envelope(), recipients=readers)

    refused = outcomes[readers[617].delivery_id]
    assert refused.status == PERMANENT and "'to' parameter is not a valid address" in refused.error
    assert [r for r in readers if outcomes[r.delivery_id].status != SENT] == [readers[617]]
    assert sink.tally.unique == sink.tally.total == 999 and readers[617].email not in sink.tally.recipients
    assert sink.posts <= 2 * 10 + 1  # two calls per halving


def test_a_call_refused_for_what_every_reader_shares_stops_splitting(sink):
    sink.answer_status, sink.answer_body = 400, {"message": "from parameter is missing"}
    readers = _readers(1000)
    outcomes = MailgunBatchTransport().send(envelope=_envelope(), recipients=readers)

    assert {o.status for o in outcomes.values()} == {PERMANENT} and len(outcomes) == 1000
    assert all("from parameter is missing" in o.error for o in outcomes.values())
    # Halved down to one reader, then three readers refused alone with none
    # accepted: not the 1,999 calls a full split would take.
    assert sink.posts == 13


# --- Through the engine ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_issue_to_2500_readers_is_three_calls_and_webhooks_find_each_reader(settings, sink):
    settings.SEND_BATCH_SIZE = 1000
    _other_readers()
    news = list_make("news")
    readers_make(news, 2500)
    issue = issue_make(news)
    issue_start_here(issue)

    issue_drain(issue, limit=50)

    tally = sink.tally
    assert tally.calls == 3 and len(sink.requests) == 3
    assert tally.unique == 2500 and tally.total == 2500 and tally.duplicates == 0
    assert tally.missing_unsubscribe == 0 and tally.shared_unsubscribe == 0
    assert sorted(len(r["fields"]["to"]) for r in sink.requests) == [500, 1000, 1000]
    issue.refresh_from_db()
    assert issue.status == "sent"
    rows = {row.email: row for row in Delivery.objects.filter(issue=issue)}
    assert len(rows) == 2500 and {row.status for row in rows.values()} == {"sent"}
    spans = {m.provider_message_id: m for m in SentMessage.objects.filter(issue_id=issue.pk)}
    assert len(spans) == 3
    for request in sink.requests:
        answer_id = request["answer"]["id"]
        carried = [rows[address] for address in request["fields"]["to"]]
        assert {row.provider_message_id for row in carried} == {answer_id}
        ids = sorted(row.pk for row in carried)
        assert (spans[answer_id].first_delivery_id, spans[answer_id].last_delivery_id) == (ids[0], ids[-1])
        assert Delivery.objects.filter(issue=issue, pk__range=(ids[0], ids[-1])).count() == len(ids)
        copies = _mailgun_copies(request)
        for row in (carried[0], carried[-1]):
            copy = copies[row.email]
            assert copy["variables"]["delivery_id"] == str(row.pk)
            assert copy["variables"]["subscriber_id"] == str(row.subscriber_id)
            assert re.fullmatch(
                rf"<dwv\.{issue.pk}\.{row.subscriber_id}\.[0-9a-f]{{12}}@lists\.example\.org>",
                copy["headers"]["Message-Id"],
            )
            claim = unsubscribe_token_read(
                copy["headers"]["List-Unsubscribe"].split(">")[0].rsplit("/u/", 1)[1].rstrip("/")
            )
            assert (claim.subscriber_id, claim.list_id, claim.issue_id) == (row.subscriber_id, news.pk, issue.pk)

    # A Mailgun event names the call's id (without brackets) and the recipient.
    second = sink.requests[1]
    reader = rows[second["fields"]["to"][417]]
    bare = second["answer"]["id"].strip("<>")
    assert delivery_find(message_id=bare, metadata={}, recipient=reader.email) == reader
    assert delivery_find(message_id=f"<{bare}>", metadata={}, recipient=reader.email.upper()) == reader
    # Its custom data alone finds the reader too.
    copy = _mailgun_copies(second)[reader.email]
    assert delivery_find(message_id="", metadata=copy["variables"], recipient="") == reader

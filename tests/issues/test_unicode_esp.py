"""The Unicode corpus through the ESP paths: anymail's real backends and our Mailgun client, to the loopback APIs."""

from __future__ import annotations

import pytest

from issues.models import Delivery
from tests.issues.ledger_helpers import issue_drain, issue_start_here
from tests.issues.unicode_corpus import IDN, LISTS, READERS, SUBJECT, corpus_make

pytestmark = pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning")

# What the provider is given: the IDN domain in its A-label form.
ADDRESSES = {address for _, address in READERS} - {IDN[0]} | {IDN[1]}
NAMES = {address: name for name, address in READERS} | {IDN[1]: {a: n for n, a in READERS}[IDN[0]]}
LIST_NAMES = {slug: name for slug, name, _ in LISTS}


def _use(settings, esp: str, sink) -> None:
    settings.SITE_URL = "https://list.example.org"
    settings.EMAIL_TRANSPORT = esp
    settings.EMAIL_BACKEND = f"anymail.backends.{esp}.EmailBackend"
    settings.ANYMAIL = sink.anymail_settings(esp)


def _header(headers: dict, name: str) -> str:
    return next((value for key, value in headers.items() if key.lower() == name.lower()), "")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("esp", ["sendgrid", "brevo", "mailjet"])
def test_unicode_corpus_through_the_batch_apis(settings, _running_sink, esp):
    sink = _running_sink.reset(keep_messages=True)
    _use(settings, esp, sink)
    issue, _ = corpus_make()
    issue_start_here(issue)
    issue_drain(issue)
    copies = sink.tally.messages
    assert {copy["to"] for copy in copies} == ADDRESSES
    assert len(copies) == len(READERS) == Delivery.objects.filter(issue=issue, status="sent").count()
    for copy in copies:
        assert copy["subject"] == SUBJECT  # plain text; the provider encodes it
        list_id = _header(copy["headers"], "List-Id")
        slug = list_id.rpartition("<")[2].split(".")[0]
        assert list_id.endswith(f"<{slug}.list.example.org>")
        if esp != "brevo":  # anymail refuses non-ASCII header values for Brevo: the id alone goes
            assert list_id == f'"{LIST_NAMES[slug]}" <{slug}.list.example.org>'
        assert "Les ouvrières ont parlé." in copy["text"] and "労働者は団結する。" in copy["text"]
    if esp == "sendgrid":
        request = copies[0]["request"]
        sent_names = {to["email"]: to.get("name", "") for p in request["personalizations"] for to in p["to"]}
        assert sent_names == {address: NAMES[address] for address in sent_names}
        assert request["from"]["name"] == LISTS[0][2]


@pytest.mark.django_db(transaction=True)
def test_unicode_corpus_through_mailgun(settings, _running_sink):
    sink = _running_sink.reset(keep_messages=True)
    _use(settings, "mailgun", sink)
    issue, _ = corpus_make()
    issue_start_here(issue)
    issue_drain(issue)
    assert Delivery.objects.filter(issue=issue, status="sent").count() == len(READERS)
    fields = [request["fields"] for request in sink.requests]
    assert {to for f in fields for to in f["to"]} == ADDRESSES
    for form in fields:
        assert form["subject"] == [SUBJECT]
        assert "Les ouvrières ont parlé." in form["text"][0]

"""VERP: each copy leaves with its own signed envelope sender naming its delivery."""

from __future__ import annotations

import pytest

from issues.delivery.verp import verp_address, verp_delivery_id, verp_token_make
from issues.models import Delivery
from tests.feedback.bounces.conftest import issue_sent


@pytest.mark.django_db
def test_each_copy_is_sent_with_a_distinct_verp_envelope_sender_naming_its_delivery(smtp_sink):
    issue = issue_sent(readers=5)
    deliveries = list(Delivery.objects.filter(issue=issue).order_by("id"))
    senders = {d.email: smtp_sink.senders[d.email] for d in deliveries}
    assert len(set(senders.values())) == 5
    for delivery in deliveries:
        sender = senders[delivery.email]
        assert sender.startswith("bounces+") and sender.endswith("@lists.example.org")
        assert verp_delivery_id(sender) == delivery.pk
    # Return-Path is the receiving server's business; our From stays the list's.
    assert {m["From"].addresses[0].addr_spec for m in smtp_sink.tally.parsed()} == {"news@lists.example.org"}


@pytest.mark.django_db
def test_without_a_bounce_address_copies_are_sent_from_the_lists_address(smtp_sink, settings):
    settings.BOUNCE_ADDRESS = ""
    issue_sent(readers=2)
    assert set(smtp_sink.senders.values()) == {"news@lists.example.org"}


def test_a_token_survives_an_mta_that_folds_case_and_cannot_be_forged(settings):
    settings.BOUNCE_ADDRESS = "bounces@lists.example.org"
    address = verp_address(delivery_id=987654321)
    assert verp_delivery_id(address.upper()) == 987654321
    token = verp_token_make(delivery_id=987654321)
    value, _, signature = token.partition("-")
    forged = f"bounces+{value[:-1]}{'1' if value[-1] != '1' else '2'}-{signature}@lists.example.org"
    assert verp_delivery_id(forged) is None
    assert verp_delivery_id("bounces+zz-aaaaaaaaaaaaa@lists.example.org") is None
    assert verp_delivery_id("bounces@lists.example.org") is None
    assert verp_delivery_id("") is None
    assert len(token) <= 20


def test_test_copies_use_the_bare_bounce_address(settings):
    settings.BOUNCE_ADDRESS = "bounces@lists.example.org"
    assert verp_address(delivery_id=-1) == "bounces@lists.example.org"
    settings.BOUNCE_ADDRESS = ""
    assert verp_address(delivery_id=5) == ""

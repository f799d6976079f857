import pytest

from subscriptions import tokens


def test_confirmation_token_round_trips_and_matches_only_its_state():
    token = tokens.confirmation_token_make(subscriber_id=42, issued_at=1_700_000_000, state="a")
    claim = tokens.confirmation_token_read(token)
    assert (claim.subscriber_id, claim.issued_at) == (42, 1_700_000_000)
    assert tokens.confirmation_token_matches(claim, state="a")
    assert not tokens.confirmation_token_matches(claim, state="b")


def test_confirmation_token_refuses_tampering_and_other_purposes():
    token = tokens.confirmation_token_make(subscriber_id=42, issued_at=1_700_000_000, state="a")
    assert tokens.confirmation_token_read(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert tokens.confirmation_token_read(tokens.unsubscribe_token_make(subscriber_id=42, list_id=1)) is None
    assert tokens.unsubscribe_token_read(token) is None
    assert tokens.confirmation_token_read("x" * 500) is None


def test_confirmation_token_expires_after_the_configured_days(settings):
    settings.CONFIRMATION_MAX_AGE_DAYS = 2
    claim = tokens.confirmation_token_read(tokens.confirmation_token_make(subscriber_id=1, issued_at=0, state=""))
    assert not tokens.confirmation_token_expired(claim, now=2 * 86400)
    assert tokens.confirmation_token_expired(claim, now=2 * 86400 + 1)


def test_address_token_carries_both_addresses_and_refuses_tampering():
    token = tokens.address_token_make(subscriber_id=7, old_email="a@example.org", new_email="b@example.org")
    assert tokens.address_token_read(token) == tokens.AddressClaim(7, "a@example.org", "b@example.org")
    assert tokens.address_token_read(token + "x") is None
    assert tokens.address_token_read(tokens.preferences_token_make(subscriber_id=7)) is None


@pytest.mark.parametrize("subscriber_id, list_id, issue_id", [(0, 1, None), (1, 1, 1), (987654321, 42, 77)])
def test_link_tokens_are_exactly_what_djangos_signer_makes(subscriber_id, list_id, issue_id, settings):
    from django.core import signing

    from subscriptions.tokens import _b36, preferences_token_make, unsubscribe_token_make

    value = f"{_b36(subscriber_id)}.{_b36(list_id)}.{_b36(issue_id) if issue_id else ''}"
    for key in ("k" * 50, "another-secret-" * 4):
        settings.SECRET_KEY = key
        expected = signing.Signer(salt="dwvlist.subscriptions.unsubscribe", algorithm="sha256").sign(value)
        assert unsubscribe_token_make(subscriber_id=subscriber_id, list_id=list_id, issue_id=issue_id) == expected
        expected = signing.Signer(salt="dwvlist.subscriptions.preferences", algorithm="sha256").sign(
            _b36(subscriber_id)
        )
        assert preferences_token_make(subscriber_id=subscriber_id) == expected

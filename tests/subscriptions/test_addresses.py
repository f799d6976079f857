import pytest
from django.core.exceptions import ValidationError

from subscriptions.addresses import email_hash, email_normalize


def test_domain_is_lower_cased_and_spaces_trimmed():
    assert email_normalize("  Reader@Example.ORG ") == "Reader@example.org"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "no-at-sign",
        "a@b@example.org",
        "reader@example.org\r\nBcc: x@example.org",
        "a\n@example.org",
        "x" * 250 + "@example.org",
        "reader@",
        "@example.org",
    ],
)
def test_bad_addresses_are_refused_with_a_message(raw):
    with pytest.raises(ValidationError) as info:
        email_normalize(raw)
    assert info.value.messages[0]


def test_hash_ignores_letter_case_and_is_keyed(settings):
    assert email_hash("Reader@Example.org") == email_hash("reader@example.org")
    before = email_hash("reader@example.org")
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40
    assert email_hash("reader@example.org") != before


def test_email_hash_is_djangos_salted_hmac_of_the_normalised_address(settings):
    from django.utils.crypto import salted_hmac

    from subscriptions.addresses import email_hash

    for key in ("k" * 50, "another-secret-" * 4):
        settings.SECRET_KEY = key
        expected = salted_hmac("dwvlist.subscriptions.suppression", "reader@example.org", algorithm="sha256")
        assert email_hash("  Reader@Example.ORG ") == expected.hexdigest()

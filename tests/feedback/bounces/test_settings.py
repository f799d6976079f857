"""The bounce, DKIM and mailbox settings stop start-up with a message naming the variable."""

from __future__ import annotations

import pytest

from tests.dwvlist.test_settings import _django_check


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"BOUNCE_ADDRESS": "bounces+x@example.org"}, "BOUNCE_ADDRESS"),
        ({"BOUNCE_ADDRESS": "not-an-address"}, "BOUNCE_ADDRESS"),
        ({"BOUNCE_ADDRESS": "bóunces@example.org"}, "BOUNCE_ADDRESS"),
        ({"BOUNCE_MAILBOX_URL": "http://mail.example.org/"}, "BOUNCE_MAILBOX_URL"),
        ({"BOUNCE_MAILBOX_INTERVAL": "0"}, "BOUNCE_MAILBOX_INTERVAL"),
        ({"BOUNCE_HTTP_TOKEN": "short"}, "BOUNCE_HTTP_TOKEN"),
        ({"DKIM_DOMAIN": "example.org"}, "DKIM_DOMAIN, DKIM_SELECTOR and DKIM_PRIVATE_KEY"),
        ({"DKIM_PRIVATE_KEY_FILE": "/nonexistent/dkim.pem"}, "DKIM_PRIVATE_KEY_FILE"),
        (
            {"DKIM_DOMAIN": "example.org", "DKIM_SELECTOR": "s", "DKIM_PRIVATE_KEY": "garbage"},
            "DKIM_PRIVATE_KEY could not be read",
        ),
    ],
)
def test_a_bad_value_stops_start_up_naming_it(overrides, named):
    result = _django_check({"DEBUG": "1", **overrides})
    assert result.returncode != 0
    assert named in result.stderr

"""The one way a sender is written: quoted where it must be, encoded where it is not ASCII, on one line."""

from __future__ import annotations

import email.policy
from email.headerregistry import Address

import pytest

from dwvlist.emails import sender_address


@pytest.mark.parametrize(
    ("name", "address"),
    [
        ("DWV", "list@dwv.example"),
        ('The "Voice", Detroit', "list@dwv.example"),
        ("D\u00e9troit Workers\u2019 Voice", "list@dwv.example"),
        ("Smith, Jane (editor)", "jane@dwv.example"),
        ("Line\r\nBcc: victim@example.org", "list@dwv.example"),
    ],
)
def test_the_sender_reads_back_as_written_in_one_header(name, address):
    header = sender_address(name, address)
    assert "\r" not in header and "\n" not in header
    parsed = email.message_from_string(f"From: {header}\n\nx", policy=email.policy.default)["From"]
    assert parsed.addresses == (Address(display_name=" ".join(name.split()), addr_spec=address),)

"""Lists, readers and a subject as real people type them: accents, Greek, CJK, quotes, emoji, right-to-left."""

from __future__ import annotations

import email
import email.parser
import email.policy
import re

from django.utils import timezone

from issues.models import Issue
from subscriptions.models import MailingList, Subscriber, Subscription

LISTS = [
    ("detroit", "Détroit Voice — la Voix des Ouvrières", "Rédaction Détroit, « ouvrière »"),
    ("hellas", "Η Φωνή των Εργατών της Αθήνας", "Σύνταξη"),  # noqa: RUF001 (Greek, on purpose)
    ("tokyo", "デトロイト労働者の声・東京支部", "編集部"),
]

# (name, address): quotes, commas, emoji, right-to-left text, an IDN domain, a UTF-8 local part.
READERS = [
    ('Zoë "Zee" O\'Brien, Jr.', "zoe@example.org"),
    ("😀 Emoji Fan, 🎉 Party", "emoji@example.org"),
    ("עברית שלום", "hebrew@example.org"),
    ("محمد، علي", "arabic@example.org"),
    ("Ελένη Παπαδοπούλου", "eleni@example.org"),
    ("李小龍", "li@example.org"),
    ("Jürgen Müller", "juergen@münchen.example"),
    ("José Martínez", "josé@example.org"),
    ("Plain Reader", "plain@example.org"),
    ("", "noname@example.org"),
]
UTF8_LOCAL = "josé@example.org"
REPLY_TO = ("redaction@rédaction.example", "redaction@xn--rdaction-b1a.example")
IDN = ("juergen@münchen.example", "juergen@xn--mnchen-3ya.example")

# 96 characters, accented, with a colon and guillemets.
SUBJECT = "Détroit: les ouvrières de l'usine Jefferson « Nous avons porté cette usine » — réunion à l'hôtel"
assert len(SUBJECT) == 96

BODY = "Les ouvrières ont parlé.\n\nΗ απεργία συνεχίζεται. 労働者は団結する。\n\n.a line that starts with a dot\n"  # noqa: RUF001

STRICT = email.policy.default.clone(raise_on_defect=True)
ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


def corpus_make() -> tuple[Issue, dict[str, MailingList]]:
    """Create the three lists, the readers spread over them (each on one), and an issue to all three."""
    lists = {}
    for slug, name, from_name in LISTS:
        lists[slug] = MailingList.objects.create(
            slug=slug,
            name=name,
            from_name=from_name,
            from_email=f"{slug}@lists.example.org",
            reply_to=REPLY_TO[0] if slug == "detroit" else "",
            footer_text="Écrivez-nous — 手紙を書いてください",
            archive_enabled=True,
        )
    now = timezone.now()
    slugs = list(lists)
    for n, (name, address) in enumerate(READERS):
        subscriber = Subscriber.objects.create(email=address, name=name)
        Subscription.objects.create(
            subscriber=subscriber,
            mailing_list=lists[slugs[n % len(slugs)]],
            status="active",
            consent_source="admin",
            confirmed_at=now,
        )
    issue = Issue.objects.create(
        title=SUBJECT,
        byline="Ελένη & 李",
        body=BODY,
    )
    issue.lists.set(lists.values())
    return issue, lists


def parse_strict(raw: bytes) -> email.message.EmailMessage:
    """Parse a received copy with the standard library's strict policy (any defect raises)."""
    return email.message_from_bytes(raw, policy=STRICT)


def headers_strict(raw: bytes) -> email.message.EmailMessage:
    """Parse a received copy's headers strictly, read as UTF-8 text (an SMTPUTF8 copy has UTF-8 in them, RFC 6532)."""
    head = raw.partition(b"\r\n\r\n")[0]
    return email.parser.Parser(policy=STRICT).parsestr(head.decode("utf-8") + "\r\n\r\n", headersonly=True)


def wire_checks(raw: bytes) -> None:
    """Assert RFC 5322's limits on the raw copy: lines of at most 998 octets, encoded words of at most 75."""
    head, _, _ = raw.partition(b"\r\n\r\n")
    for line in raw.split(b"\r\n"):
        assert len(line) <= 998, line[:80]
    for line in head.decode("utf-8").split("\r\n"):
        for word in ENCODED_WORD.findall(line):
            assert len(word) <= 75, word
        # Folded where it can be: a longer line holds one unbreakable token (a long URL).
        assert len(line) <= 78 or " " not in line.strip().split(": ", 1)[-1], line


def display(header) -> tuple[str, str]:
    """Return (display name, address) of a parsed single-address header."""
    address = header.addresses[0]
    return address.display_name, address.addr_spec

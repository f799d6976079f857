"""What DKIM signing costs per copy on the SMTP path, in CPU time (so other load on the machine hardly shows).

    .venv/bin/python -m bench.dkim_bench [-n 3000]

Renders the bench article as an issue is rendered for sending, then builds
N readers' copies of it with the SMTP transport's own copy_build (the
snapshot personalised, the MIME assembled, 8bit as to a relay offering
8BITMIME), unsigned, signed with an RSA-2048 key and signed with an
Ed25519 key, and prints the CPU microseconds per copy of each. Then it
takes a signed copy apart: the private-key operation alone, the body's
SHA-256 (whole, and past the prefix the batch's copies share), the header
fields' canonical form, and the rest. No database: the readers, list and
issue are unsaved objects.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _key(kind: str) -> str:
    algorithm = ["RSA", "-pkeyopt", "rsa_keygen_bits:2048"] if kind == "rsa" else ["ED25519"]
    return subprocess.run(
        ["openssl", "genpkey", "-algorithm", *algorithm], check=True, capture_output=True, text=True
    ).stdout


def _micros(step, n: int) -> float:
    """Return the CPU microseconds per call of step(i) over n calls."""
    started = time.process_time()
    for index in range(n):
        step(index)
    return (time.process_time() - started) / n * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dkim_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=3000)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dwvlist.settings")
    import django

    django.setup()
    from dwvlist import dkim
    from issues.delivery.mime import MessageTemplate, address_header, header_line, message_join
    from issues.delivery.transports.base import Envelope, personal_parts
    from issues.delivery.transports.dkim import DkimBatch
    from issues.delivery.transports.smtp import copy_build
    from issues.models import Issue
    from issues.rendering import issue_render
    from subscriptions.models import MailingList
    from tests.issues.ledger_helpers import recipients_unsaved

    article = (ROOT / "bench" / "article.txt").read_text()
    news = MailingList(pk=3, slug="news", name="News", from_email="news@lists.example.org", archive_enabled=True)
    rendered = issue_render(
        Issue(pk=7, title="When the plant closes", byline="The editors", body=article), mailing_list=news
    )
    envelope = Envelope(7, rendered.subject, rendered.html, rendered.text, news.from_email, "DWV", "ed@example.org")
    recipients = recipients_unsaved(args.n)
    n = args.n

    def batch_template() -> MessageTemplate:
        return MessageTemplate(
            from_line=address_header("From", envelope.from_name, envelope.from_email),
            subject_line=header_line("Subject", envelope.subject),
            reply_to_line=address_header("Reply-To", "", envelope.reply_to),
            extra_headers=envelope.extra_headers,
        )

    signers = {
        "off": None,
        "rsa-2048": dkim.DkimSigner(domain="lists.example.org", selector="b", private_key_pem=_key("rsa")),
        "ed25519": dkim.DkimSigner(domain="lists.example.org", selector="b", private_key_pem=_key("ed25519")),
    }
    costs, size = {}, 0
    for name, signer in signers.items():
        started = time.process_time()
        for index, recipient in enumerate(recipients):
            if index % 500 == 0:  # a new batch, as the transport makes them
                template, signing = batch_template(), DkimBatch(signer) if signer is not None else None
            raw = copy_build(template=template, envelope=envelope, recipient=recipient, marked="",
                             eightbit=True, signing=signing)  # fmt: skip
            size = len(raw)
        costs[name] = (time.process_time() - started) / n * 1e6
    print(f"copies                  {n:,} of {size:,} bytes (the article {len(article.encode()):,} bytes of text)")
    for name, micros in costs.items():
        extra = f" (+{micros - costs['off']:.0f} µs, {micros / costs['off'] - 1:+.0%})" if name != "off" else ""
        print(f"{name:<23} {micros:,.0f} µs CPU per copy{extra}")

    # Where a signed copy's time goes.
    template = batch_template()
    copies = []
    for recipient in recipients[:500]:
        text, html = personal_parts(envelope, recipient)
        copies.append(template.render_fields(to_name=recipient.name, to=recipient.email,
                                             message_id=recipient.message_id, text=text, html=html,
                                             headers=recipient.headers, eightbit=True))  # fmt: skip
    raws = [message_join(fields, body) for fields, body in copies]
    ed = signers["ed25519"]
    batch = DkimBatch(ed)
    batch.sign(*copies[0])
    batch.sign(*copies[1])
    shared = len(batch._prefix)
    stub = copy.copy(ed)
    stub._sign_bytes = lambda data: bytes(64)  # what is left is everything but the private-key operation
    keyless = DkimBatch(stub)
    for fields, body in copies[:2]:
        keyless.sign(fields, body)
    body_size = len(copies[0][1])
    fields = copies[0][0]
    data = (
        "".join(dkim.field_relaxed(name, line) for name, line in fields if name.lower() in dkim._SIGNED)
        + "dkim-signature:v=1; a=ed25519-sha256; c=relaxed/simple; d=lists.example.org; s=b; t=1; h=x; bh=x; b="
    ).encode()
    m = min(n, 500)
    rows = [
        ("ed25519 private-key op (SHA-256 of the headers, sign)", _micros(lambda i: ed._sign_bytes(data), m)),
        ("rsa-2048 private-key op", _micros(lambda i: signers["rsa-2048"]._sign_bytes(data), min(m, 300))),
        (
            f"body SHA-256 + base64, whole ({body_size:,} bytes)",
            _micros(lambda i: base64.b64encode(hashlib.sha256(copies[i % 500][1]).digest()), m),
        ),
        (
            f"body SHA-256 + base64, past the shared {shared:,} bytes",
            _micros(lambda i: batch._body_hash(copies[i % 500][1]), m),
        ),
        (
            "header fields' canonical form, every field worked out",
            _micros(
                lambda i: [dkim.field_relaxed(k, v) for k, v in copies[i % 500][0] if k.lower() in dkim._SIGNED], m
            ),
        ),
        (
            "header fields parsed from the raw message (DkimSigner.sign)",
            _micros(lambda i: dkim.fields_split(raws[i % 500].partition(b"\r\n\r\n")[0]), m),
        ),
        ("signed copy, ed25519, all of it (DkimBatch.sign)", _micros(lambda i: batch.sign(*copies[i % 500]), m)),
        ("  the same without the private-key op", _micros(lambda i: keyless.sign(*copies[i % 500]), m)),
        ("signed copy, ed25519, from the raw message (DkimSigner.sign)", _micros(lambda i: ed.sign(raws[i % 500]), m)),
        ("unsigned: joining fields and body", _micros(lambda i: message_join(*copies[i % 500]), m)),
    ]
    print("\nwhere the time goes (CPU µs per copy)")
    for label, micros in rows:
        print(f"  {label:<62} {micros:8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

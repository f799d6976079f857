"""What DKIM signing costs per copy on the SMTP path, in CPU time (so other load on the machine hardly shows).

    .venv/bin/python -m bench.dkim_bench [-n 5000]

Builds N readers' copies of the bench article exactly as the SMTP transport
does (the snapshot personalised, the MIME assembled), unsigned, signed with
an RSA-2048 key, and signed with an Ed25519 key, and prints the CPU
microseconds per copy of each and the signature's share. No database: the
readers and list are unsaved objects.
"""

from __future__ import annotations

import argparse
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


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dkim_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=5000)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dwvlist.settings")
    import django

    django.setup()
    from issues.delivery.mime import MessageTemplate
    from issues.delivery.transports.base import Envelope, personal_parts
    from issues.delivery.transports.dkim import DkimSigner
    from issues.rendering import PREFERENCES_URL, UNSUBSCRIBE_URL
    from tests.issues.ledger_helpers import recipients_unsaved

    article = (ROOT / "bench" / "article.txt").read_text()
    html = (
        f"<html><body><p>{article}</p><a href='{UNSUBSCRIBE_URL}'>u</a><a href='{PREFERENCES_URL}'>p</a></body></html>"
    )
    text = f"{article}\nUnsubscribe: {UNSUBSCRIBE_URL}\nPreferences: {PREFERENCES_URL}\n"
    envelope = Envelope(7, "When the plant closes", html, text, "news@lists.example.org", "DWV", "ed@example.org")
    template = MessageTemplate(from_header="DWV <news@lists.example.org>", subject_header=envelope.subject,
                               reply_to=envelope.reply_to, extra_headers={})  # fmt: skip
    recipients = recipients_unsaved(args.n)
    signers = {
        "off": None,
        "rsa-2048": DkimSigner(domain="lists.example.org", selector="b", private_key_pem=_key("rsa")),
        "ed25519": DkimSigner(domain="lists.example.org", selector="b", private_key_pem=_key("ed25519")),
    }
    costs = {}
    for name, signer in signers.items():
        started = time.process_time()
        for recipient in recipients:
            plain, rich = personal_parts(envelope, recipient)
            raw = template.render(to=recipient.email, message_id=recipient.message_id, text=plain, html=rich,
                                  headers=recipient.headers)  # fmt: skip
            if signer is not None:
                raw = signer.sign(raw)
        costs[name] = (time.process_time() - started) / args.n * 1e6
    print(f"copies                  {args.n:,} of {len(article.encode()):,} bytes of text")
    for name, micros in costs.items():
        extra = f" (+{micros - costs['off']:.0f} µs, {micros / costs['off'] - 1:+.0%})" if name != "off" else ""
        print(f"{name:<23} {micros:,.0f} µs CPU per copy{extra}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

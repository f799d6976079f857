"""Benchmark the bounce mailbox: N DSNs in a real Dovecot, read over IMAP (or POP3) and recorded.

    .venv/bin/python -m bench.bounce_bench [-n 10000] [--scheme imap|pop3]

Makes a fresh PostgreSQL database (BENCH_DATABASE_URL, default
dwvlist_bounce_bench), N readers and one issue "sent" to all of them (the
ledger written and marked sent with set-based SQL, no mail sent), then a
Postfix-style DSN for each copy, addressed to its VERP address: four in
five permanent (5.1.1), one in five delayed (4.2.2). They are put in a
private Dovecot (started as root, like the tests' one) with IMAP APPEND,
and the mailbox is read with the engine's own poll, as beat would, until
it is empty. Prints DSNs per second for the poll (read, parse, attribute,
record, apply the rules, delete) and checks every reader was marked.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/dwvlist_bounce_bench"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bounce_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=10_000, help="DSNs (default 10,000)")
    parser.add_argument("--scheme", choices=["imap", "pop3"], default="imap")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from bench.__main__ import _database_fresh

    database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)
    _database_fresh(database_url)
    os.environ.update(
        {
            "DATABASE_URL": database_url,
            "DEBUG": "0",  # as in production: DEBUG keeps every query's text
            "SECRET_KEY": secrets.token_urlsafe(64),
            "LOG_LEVEL": "warning",
            "BOUNCE_ADDRESS": "bounces@lists.example.org",
            "DJANGO_SETTINGS_MODULE": "dwvlist.settings",
        }
    )
    import subprocess

    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)
    import django

    django.setup()
    from django.db import connection

    from bench.__main__ import _readers_generate
    from issues.delivery import ledger
    from issues.delivery.verp import verp_address
    from issues.feedback.bounces.mailbox import mailbox_poll
    from issues.models import Delivery, DeliveryEvent, Issue
    from subscriptions.models import MailingList
    from tests.fakes.dovecot import Dovecot, dovecot_missing

    missing = dovecot_missing()
    if missing:
        print(missing)
        return 1
    print(f"generating {args.n:,} readers and a sent issue ...", flush=True)
    _readers_generate(args.n)
    issue = Issue.objects.create(title="When the plant closes", body="x", status="sending")
    issue.lists.set(MailingList.objects.all())
    ledger.ledger_write(issue=issue)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Delivery._meta.db_table} SET status = 'sent', sent_at = now(), "  # noqa: S608
            "provider_message_id = 'dwv.' || issue_id || '.' || subscriber_id || '.bench@lists.example.org' "
            "WHERE issue_id = %s",
            [issue.pk],
        )
    sample = (ROOT / "tests" / "feedback" / "bounces" / "samples").joinpath
    hard = sample("postfix_hard.eml").read_text().replace("\r\n", "\n")
    delayed = sample("postfix_delayed.eml").read_text().replace("\r\n", "\n")
    rows = list(Delivery.objects.filter(issue=issue).values_list("id", "email", "provider_message_id"))
    server = Dovecot().start()
    try:
        started = time.monotonic()
        with server.client() as client:
            for n, (delivery_id, address, message_id) in enumerate(rows):
                template = delayed if n % 5 == 4 else hard
                raw = (
                    template.replace("{VERP}", verp_address(delivery_id=delivery_id))
                    .replace("{RCPT}", address)
                    .replace("{MSGID}", message_id)
                    .replace("@mx.lists.example.org>", f".{n}@mx.lists.example.org>", 1)
                )
                client.append("INBOX", raw.replace("\n", "\r\n").encode())
        print(f"{len(rows):,} DSNs put in the mailbox in {time.monotonic() - started:.1f} s", flush=True)
        queries = [0]

        def count(execute, sql, params, many, context):
            queries[0] += 1
            return execute(sql, params, many, context)

        load_before = os.getloadavg()[0]
        started, cpu = time.monotonic(), time.process_time()
        polls = 0
        profile = None
        if os.environ.get("BOUNCE_BENCH_PROFILE"):
            import cProfile

            profile = cProfile.Profile()
            profile.enable()
        with connection.execute_wrapper(count):
            while server.count() > 0:
                result = mailbox_poll(url=server.url(args.scheme))
                polls += 1
                print(f"  poll {polls}: {result.read} read, {result.removed} removed", flush=True)
        seconds, cpu = time.monotonic() - started, time.process_time() - cpu
        load_after = os.getloadavg()[0]
        if profile is not None:
            import pstats

            profile.disable()
            # BOUNCE_BENCH_PROFILE=1 sorts by own time; =cumulative by time within.
            order = "cumulative" if os.environ["BOUNCE_BENCH_PROFILE"] == "cumulative" else "tottime"
            pstats.Stats(profile).sort_stats(order).print_stats(40)
    finally:
        server.stop()
    bounced = Delivery.objects.filter(issue=issue, status="bounced").count()
    delays = DeliveryEvent.objects.filter(event_type="deferred").count()
    expected_hard = sum(1 for n in range(len(rows)) if n % 5 != 4)
    print()
    print(f"mailbox                 {args.scheme}, {len(rows):,} DSNs, {polls} polls")
    print(f"wall                    {seconds:.1f} s")
    print(f"load average            {load_before:.1f} at the first poll, {load_after:.1f} after the last")
    print(f"DSNs/s                  {len(rows) / seconds:,.0f}")
    print(f"this process's CPU      {cpu / len(rows) * 1e6:,.0f} µs per DSN (IMAP client, parsing, the rules)")
    print(f"database statements     {queries[0] / len(rows):.1f} per DSN")
    print(f"deliveries bounced      {bounced:,} (expected {expected_hard:,}); delays recorded {delays:,}")
    ok = bounced == expected_hard and delays == len(rows) - expected_hard
    print("RESULT", "ok" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

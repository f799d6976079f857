"""`make bench`: send one issue to N readers and measure it.

    python -m bench [--transport smtp|mailgun|sendgrid|brevo|mailjet|postmark] [-n N] [--workers 2]
                    [--sink python|postfix]
                    [--dkim off|rsa|ed25519] [--verp]

Runs against PostgreSQL (DATABASE_URL, default a fresh `dwvlist_bench`
database on 127.0.0.1) and Redis (REDIS_URL, else an embedded one), with
real worker processes and a loopback sink (SMTP, or an HTTP server that
speaks the provider's API). Prints the ledger snapshot time, the
wall time from "send" to the last recipient accepted, recipients per
second, peak worker RSS, and the recipients counted at the sink with the
duplicates.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench.database import database_fresh, django_migrated

_database_fresh = database_fresh  # bounce_bench.py imports it by this name

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/dwvlist_bench"
ARTICLE = (ROOT / "bench" / "article.txt").read_text()


# Each path's batch size.
BATCH_SIZES = {"smtp": 500, "mailgun": 1000, "sendgrid": 1000, "brevo": 1000, "mailjet": 50, "postmark": 200}


def _readers_generate(n: int) -> float:
    """Insert N confirmed readers on one list with set-based SQL; return seconds."""
    from django.db import connection

    from subscriptions.models import MailingList

    started = time.perf_counter()
    mailing_list = MailingList.objects.create(
        name="Detroit Workers' Voice",
        slug="dwv",
        from_name="Detroit Workers' Voice",
        from_email="list@lists.example.org",
        reply_to="editors@example.org",
        footer_text="Detroit Workers' Voice · write to editors@example.org",
    )
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO subscriptions_subscriber (email, name, created_at, updated_at)
            SELECT 'reader' || g || '@example.org', 'Reader ' || g, now(), now() FROM generate_series(1, %s) g
            """,
            [n],
        )
        cursor.execute(
            """
            INSERT INTO subscriptions_subscription
                (subscriber_id, mailing_list_id, status, consent_source, consented_at, consent_detail,
                 confirmed_at, unsubscribe_source, created_at, updated_at)
            SELECT id, %s, 'active', 'import', now(), 'benchmark', now(), '', now(), now()
              FROM subscriptions_subscriber
            """,
            [mailing_list.pk],
        )
        cursor.execute("ANALYZE")
    return time.perf_counter() - started


def _ledger_alone(n: int) -> float:
    """Write a 1-in-1 ledger for a throwaway issue with nothing else running; return seconds."""
    from django.db import connection

    from issues.delivery import ledger
    from issues.models import Delivery, Issue
    from subscriptions.models import MailingList

    issue = Issue.objects.create(title="Ledger timing", body="x", status="sending")
    issue.lists.set(MailingList.objects.all())
    started = time.monotonic()
    written = ledger.ledger_write(issue=issue)
    seconds = time.monotonic() - started
    assert written == n, (written, n)
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {Delivery._meta.db_table} CASCADE")
        cursor.execute("CHECKPOINT")
    issue.delete()
    return seconds


def _workers_start(count: int, env: dict, log_dir: Path) -> list[subprocess.Popen]:
    workers = []
    for index in range(count):
        log = open(log_dir / f"worker-{index}.log", "wb")  # noqa: SIM115 (lives as long as the worker)
        workers.append(
            subprocess.Popen(
                [
                    sys.executable, "-m", "celery", "-A", "dwvlist", "worker", "-Q", "bulk,default",
                    "-c", "1", "-n", f"bench{index}@%h", "-l", "warning", "--without-mingle", "--without-gossip",
                ],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        )  # fmt: skip
    return workers


def _rss_peak(workers: list[subprocess.Popen], peak: dict[int, int], cpu: dict[int, float]) -> None:
    """Note each worker process's peak RSS and the CPU seconds it has used so far."""
    for worker in workers:
        try:
            family = [psutil.Process(worker.pid), *psutil.Process(worker.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for process in family:
            try:
                rss = process.memory_info().rss
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            peak[process.pid] = max(peak.get(process.pid, 0), rss)
            cpu[process.pid] = max(cpu.get(process.pid, 0.0), times.user + times.system)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--transport", choices=sorted(BATCH_SIZES), default="smtp")
    parser.add_argument("-n", type=int, default=100_000, help="readers (default 100,000)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--batch", type=int, default=None, help="recipients per batch (default: transport's max)")
    parser.add_argument(
        "--sink",
        choices=["python", "postfix"],
        default="python",
        help="SMTP sink: our asyncio one (counts each reader) or Postfix's smtp-sink in C (bench/postfix_sink.py)",
    )
    parser.add_argument(
        "--dkim", choices=["off", "rsa", "ed25519"], default="off", help="DKIM-sign every copy (SMTP path only)"
    )
    parser.add_argument("--verp", action="store_true", help="a VERP envelope sender per copy (SMTP path only)")
    args = parser.parse_args()

    database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)
    database_fresh(database_url)
    work = Path(tempfile.mkdtemp(prefix="dwvlist-bench-"))
    os.environ.update(
        {
            "DATABASE_URL": database_url,
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(64),
            "VAR_DIR": str(work),
            "LOG_LEVEL": "warning",
        }
    )

    from dwvlist.embedded_redis import redis_ensure

    redis_url, embedded = redis_ensure(workdir=work / "redis", fallback=True)
    os.environ["REDIS_URL"] = redis_url
    import redis

    redis.Redis.from_url(redis_url).flushdb()

    from tests.fakes.sinks import EspSink, FastSmtpSink

    if args.transport == "smtp" and args.sink == "postfix":
        from bench.postfix_sink import PostfixSmtpSink

        sink = PostfixSmtpSink().start()
        transport_env = {"EMAIL_TRANSPORT": "smtp", "EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(sink.port)}
    elif args.transport == "smtp":
        sink = FastSmtpSink().start()
        transport_env = {"EMAIL_TRANSPORT": "smtp", "EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(sink.port)}
    else:
        sink = EspSink().start()
        transport_env = {"EMAIL_TRANSPORT": args.transport, **sink.anymail_env(args.transport)}
    batch = args.batch or BATCH_SIZES[args.transport]
    if args.dkim != "off":
        algorithm = ["RSA", "-pkeyopt", "rsa_keygen_bits:2048"] if args.dkim == "rsa" else ["ED25519"]
        key = subprocess.run(
            ["openssl", "genpkey", "-algorithm", *algorithm], check=True, capture_output=True, text=True
        ).stdout
        transport_env.update({"DKIM_DOMAIN": "lists.example.org", "DKIM_SELECTOR": "bench", "DKIM_PRIVATE_KEY": key})
    if args.verp:
        transport_env["BOUNCE_ADDRESS"] = "bounces@lists.example.org"
    os.environ.update(transport_env)
    os.environ.update({"SEND_BATCH_SIZE": str(batch), "SEND_LANES": str(args.workers * 2)})
    env = dict(os.environ)

    django_migrated(database_url=database_url)
    from issues import services
    from issues.models import Delivery, Issue
    from subscriptions.models import MailingList

    print(f"generating {args.n:,} readers on PostgreSQL ...", flush=True)
    generate_seconds = _readers_generate(args.n)
    snapshot_seconds = _ledger_alone(args.n)
    print(f"ledger snapshot alone: {snapshot_seconds:.2f} s", flush=True)
    workers = _workers_start(args.workers, env, work)
    peak: dict[int, int] = {}
    cpu: dict[int, float] = {}
    try:
        time.sleep(4)  # let the workers connect
        issue = Issue.objects.create(title="When the plant closes", byline="The editors", body=ARTICLE)
        issue.lists.set(MailingList.objects.all())
        _rss_peak(workers, peak, cpu)
        cpu_before, own_cpu_before = sum(cpu.values()), time.process_time()
        started = time.monotonic()
        # issue_send queues the ledger task; a worker writes it in chunks and
        # the lanes start on the first one while the rest is written.
        services.issue_send(issue=issue)
        send_seconds = time.monotonic() - started
        last_report = 0.0
        while True:
            _rss_peak(workers, peak, cpu)
            now = time.monotonic()
            if now - last_report >= 5:
                last_report = now
                print(f"  {sink.tally.total:>9,} / {args.n:,} at the sink after {now - started:6.1f} s", flush=True)
            if Issue.objects.filter(pk=issue.pk, status="sent").exists():
                break
            if any(w.poll() is not None for w in workers):
                raise SystemExit("a worker died; see its log in " + str(work))
            time.sleep(0.5)
        _rss_peak(workers, peak, cpu)
        own_cpu = time.process_time() - own_cpu_before
        wall = (sink.tally.last_at or time.monotonic()) - started
        sink_busy = (sink.tally.last_at or 0.0) - (sink.tally.first_at or 0.0)
        finished_wall = time.monotonic() - started
    finally:
        for worker in workers:
            try:
                os.killpg(worker.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for worker in workers:
            worker.wait(timeout=30)
        sink.stop()
        if embedded:
            embedded.stop()
    sent = Delivery.objects.filter(issue=issue, status="sent").count()
    peak_mb = max(peak.values()) / 2**20 if peak else 0.0
    print()
    duplicates = (
        Delivery.objects.filter(issue=issue, reclaimed_at__isnull=False).count() if args.sink == "postfix" else None
    )
    print(f"transport               {args.transport} (batch {batch}, {args.workers} worker processes)")
    if args.transport == "smtp":
        print(f"sink                    {'Postfix smtp-sink (C)' if args.sink == 'postfix' else 'asyncio (Python)'}")
    print(f"DKIM, VERP              {args.dkim}, {'on' if args.verp else 'off'}")
    print(f"readers                 {args.n:,} (generated in {generate_seconds:.1f} s)")
    print(f"issue size              {len(ARTICLE.encode()):,} bytes of text")
    print(f"ledger snapshot         {snapshot_seconds:.2f} s alone (written by a worker's task while sending)")
    print(f"issue_send              {send_seconds:.2f} s (freezes the snapshot and queues the ledger task)")
    print(f"wall, send -> last      {wall:.1f} s (issue marked sent after {finished_wall:.1f} s)")
    print(f"recipients/s            {args.n / wall:,.0f} (first to last at the sink {sink_busy:.1f} s)")
    print(f"peak worker RSS         {peak_mb:.0f} MB")
    # From issue_send on, the ledger task included: what the other load on
    # the machine hardly changes, unlike the rate.
    worker_cpu = (sum(cpu.values()) - cpu_before) / args.n * 1e6
    print(f"worker CPU per reader   {worker_cpu:,.0f} µs (both workers, all their processes, from issue_send on)")
    if args.transport == "smtp" and args.sink == "python":
        print(f"sink CPU per reader     {own_cpu / args.n * 1e6:,.0f} µs (this process: the sink, the progress loop)")
    if duplicates is None:
        print(f"counted at the sink     {sink.tally.unique:,} unique, {sink.tally.duplicates} duplicates")
    else:
        print(f"counted at the sink     {sink.tally.total:,} messages; ledger rows possibly sent twice: {duplicates}")
    print(f"own List-Unsubscribe    missing {sink.tally.missing_unsubscribe}, shared {sink.tally.shared_unsubscribe}")
    print(f"ledger rows sent        {sent:,}")
    ok = sink.tally.unique == args.n and sink.tally.duplicates == 0 and sent == args.n
    print("RESULT", "ok" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

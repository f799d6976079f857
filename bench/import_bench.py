"""Benchmark the CSV import: a generated 1M-row file into a fresh PostgreSQL database.

    .venv/bin/python -m bench.import_bench [--rows 1000000] [--server postgres://postgres@127.0.0.1:5432/]

Creates a throw-away database on the server, migrates it, writes the CSV
(with broken rows, repeats, suppressed and already-unsubscribed addresses)
into a temporary directory, imports it with consent given, prints wall
time, rows per second and the job's counts, and drops the database.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from bench.database import database_throwaway

BROKEN = ["not-an-address", "two@@example.org", "", "a b@example.org", "x@", "@example.org", "trailing.@example.org"]


def csv_write(path: Path, rows: int, seed: int = 7) -> dict[str, int]:
    """Write the benchmark CSV; return how many rows of each kind it holds."""
    rng = random.Random(seed)
    kinds = {"good": 0, "broken": 0, "repeat": 0}
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Email", "Name"])
        for i in range(rows):
            roll = rng.random()
            if roll < 0.01:
                writer.writerow([rng.choice(BROKEN), f"Broken {i}"])
                kinds["broken"] += 1
            elif roll < 0.02 and i > 10:
                writer.writerow([f"Reader{rng.randrange(i)}@Example.org", "Again"])
                kinds["repeat"] += 1
            else:
                writer.writerow([f"reader{i}@example.org", f"Reader {i}"])
                kinds["good"] += 1
    return kinds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--server", default=os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432/"))
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    args = parser.parse_args()

    with database_throwaway(server=args.server, prefix="dwvlist_import_bench", keep=args.keep):
        from django.utils import timezone

        from subscriptions.imports.jobs import import_job_create, import_job_run
        from subscriptions.models import MailingList, Subscriber, Subscription
        from subscriptions.suppressions import suppression_add

        news = MailingList.objects.create(name="News", slug="news", from_name="News", from_email="news@example.org")
        # Readers already known: some unsubscribed, some suppressed.
        now = timezone.now()
        for i in range(0, 5000, 10):
            reader = Subscriber.objects.create(email=f"reader{i}@example.org")
            Subscription.objects.create(
                subscriber=reader,
                mailing_list=news,
                status="unsubscribed",
                consent_source="form",
                unsubscribed_at=now,
                unsubscribe_source="link",
            )
        for i in range(5, 5000, 10):
            suppression_add(email=f"reader{i}@example.org", reason="hard_bounce")

        with tempfile.TemporaryDirectory(prefix="dwvlist-import-bench-") as tmp:
            path = Path(tmp) / "readers.csv"
            started = time.perf_counter()
            kinds = csv_write(path, args.rows)
            print(
                f"wrote {args.rows:,} rows ({path.stat().st_size / 1e6:.1f} MB) "
                f"in {time.perf_counter() - started:.1f} s"
            )
            print(f"file: {kinds}")
            job = import_job_create(
                source=path, file_name=path.name, mailing_list=news, consent="given", name_column="Name", copy=False
            )
            started = time.perf_counter()
            job = import_job_run(job_id=job.pk)
            wall = time.perf_counter() - started
        print(f"status: {job.status} {job.error}")
        print(f"wall time: {wall:.1f} s, {job.processed_rows / wall:,.0f} rows/s")
        print(
            f"imported {job.imported_count:,} (new readers {job.new_subscribers:,}), bad {job.bad_count:,}, "
            f"duplicates {job.duplicate_count:,}, suppressed {job.suppressed_count:,}, "
            f"unsubscribed left alone {job.unsubscribed_count:,}, already subscribed {job.existing_count:,}"
        )
        print(f"subscriptions in the database: {Subscription.objects.count():,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

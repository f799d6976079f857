"""Staff work at scale: the export, the dashboard, the report, a bulk erase and an import with confirmations.

    .venv/bin/python -m bench.staff_bench [--readers 1000000] [--issues 10] [--erase 10000] [--import-rows 100000]

Builds a fresh PostgreSQL database (BENCH_STAFF_DATABASE_URL, default
`dwvlist_staff_bench` on 127.0.0.1) with READERS active readers and ISSUES
sent issues to all of them (a ledger of READERS x ISSUES rows, written by
the real ledger code), then times, in this process, the same code the web
and the workers run:
- the export job (the worker's part) and serving its file;
- the editor home with its dashboard (cold: counting it; warm: what every
  visit gets), median of 20 requests;
- the report page of a sent issue, median of 5;
- a bulk erase of ERASE readers, run as a staff job;
- an import of IMPORT_ROWS new readers in "send a confirmation" mode, with
  the confirmation tasks it queues counted.
Figures are recorded in BENCHMARKS.md with their targets.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import tempfile
import time
from pathlib import Path

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/dwvlist_staff_bench"


def _median_ms(call, times: int) -> float:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=1_000_000)
    parser.add_argument("--issues", type=int, default=10)
    parser.add_argument("--erase", type=int, default=10_000)
    parser.add_argument("--import-rows", type=int, default=100_000)
    args = parser.parse_args()

    url = os.environ.get("BENCH_STAFF_DATABASE_URL", DEFAULT_DB)
    from bench.__main__ import _readers_generate
    from bench.database import database_fresh, django_migrated

    database_fresh(url)
    work = Path(tempfile.mkdtemp(prefix="dwvlist-staff-bench-"))
    os.environ.update({"DATABASE_URL": url, "DEBUG": "1", "VAR_DIR": str(work), "LOG_LEVEL": "warning"})
    from dwvlist.embedded_redis import redis_ensure

    redis_url, embedded = redis_ensure(workdir=work / "redis", fallback=True)
    django_migrated(database_url=url, env={"REDIS_URL": redis_url})
    from django.conf import settings
    from django.contrib.auth.models import Group, User
    from django.db import connection
    from django.test import Client

    from dwvlist.redis import redis_client
    from issues.delivery.ledger import ledger_write
    from issues.models import Issue
    from issues.selectors import dashboard_refresh
    from subscriptions.imports.jobs import import_job_create, import_job_run
    from subscriptions.models import MailingList, StaffJob, Subscriber
    from subscriptions.staff_jobs.run import staff_job_run_once
    from subscriptions.staff_jobs.services import staff_job_bulk_create, staff_job_export_create

    settings.ALLOWED_HOSTS = ["*"]
    print(f"generating {args.readers:,} readers ...", flush=True)
    _readers_generate(args.readers)
    news = MailingList.objects.get()
    print(
        f"writing {args.issues} sent issues to all of them ({args.readers * args.issues:,} ledger rows) ...", flush=True
    )
    started = time.perf_counter()
    issues = []
    for n in range(args.issues):
        issue = Issue.objects.create(title=f"Issue {n + 1}", body="x", status=Issue.Status.SENDING)
        issue.lists.add(news)
        ledger_write(issue=issue)
        issues.append(issue)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE issues_delivery SET status = 'sent', sent_at = now()")
        cursor.execute("UPDATE issues_issue SET status = 'sent', sent_at = now()")
        cursor.execute("VACUUM ANALYZE")
    print(f"  {time.perf_counter() - started:.0f} s", flush=True)

    admin = User.objects.create_user("bench", "bench@example.org", "a-long-bench-password-42", is_staff=True)
    admin.groups.add(Group.objects.get(name="Admins"))
    client = Client()
    client.force_login(admin)
    figures: dict[str, str] = {}

    # Export, as the worker runs it, then served as the web does.
    job = staff_job_export_create(mailing_list=None, status="", user=admin)
    started = time.perf_counter()
    staff_job_run_once(job_id=job.pk)
    seconds = time.perf_counter() - started
    job.refresh_from_db()
    assert job.status == StaffJob.Status.DONE, job.error
    rate = job.processed / seconds
    figures["export"] = f"{job.processed:,} rows, {job.file_size / 1e6:.0f} MB in {seconds:.1f} s ({rate:,.0f} rows/s)"
    started = time.perf_counter()
    download = client.get(f"/editor/subscribers/jobs/{job.pk}/download/")
    size = sum(len(piece) for piece in download.streaming_content)
    figures["export download"] = f"{size / 1e6:.0f} MB served in {time.perf_counter() - started:.2f} s"

    # The editor home: counting the dashboard, then what each visit costs.
    started = time.perf_counter()
    dashboard_refresh()
    figures["dashboard counted (beat)"] = f"{(time.perf_counter() - started) * 1000:.0f} ms"
    figures["editor home with dashboard"] = (
        f"{_median_ms(lambda: client.get('/editor/'), 20):.0f} ms median of 20 (target < 150 ms)"
    )
    report = f"/editor/issues/{issues[0].pk}/report/"
    figures["report page, 1 issue of a 10M ledger"] = f"{_median_ms(lambda: client.get(report), 5):.0f} ms median of 5"

    # Bulk erase.
    ids = list(Subscriber.objects.order_by("pk").values_list("pk", flat=True)[: args.erase])
    job = staff_job_bulk_create(kind=StaffJob.Kind.ERASE, subscriber_ids=ids, user=admin)
    started = time.perf_counter()
    staff_job_run_once(job_id=job.pk)
    seconds = time.perf_counter() - started
    job.refresh_from_db()
    figures["bulk erase"] = f"{job.changed:,} readers in {seconds:.1f} s ({job.changed / seconds:,.0f}/s)"

    # An import that asks each new reader to confirm.
    path = work / "import.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name"])
        writer.writerows([f"new{n}@example.org", f"New {n}"] for n in range(args.import_rows))
    queue = redis_client()
    queue.delete("default")
    started = time.perf_counter()
    imported = import_job_run(
        job_id=import_job_create(source=path, file_name="import.csv", mailing_list=news, consent="confirm").pk
    )
    seconds = time.perf_counter() - started
    figures["import with confirmations"] = (
        f"{imported.processed_rows:,} rows in {seconds:.1f} s; {imported.confirmations_queued:,} readers to confirm, "
        f"{queue.llen('default'):,} tasks queued"
    )

    print()
    for name, value in figures.items():
        print(f"{name}: {value}")
    if embedded:
        embedded.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

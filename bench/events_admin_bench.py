"""The feedback admin and an issue's report at ten million provider events: page times and the admin's plans.

    .venv/bin/python -m bench.events_admin_bench [--events 10000000] [--readers 100000] [--issues 10]
                                                 [--repeat 5] [--keep] [--reuse]

Builds a fresh PostgreSQL database (BENCH_DATABASE_URL, default
`dwv_events_bench` on 127.0.0.1) with READERS readers and ISSUES sent
issues to all of them (the ledger written by the real ledger code, then
marked delivered, bounced, failed ...), and EVENTS DeliveryEvent rows about
those deliveries: a mix of providers (mostly SendGrid; Mailjet and
SparkPost never) and of kinds (70% delivered, opens, clicks, deferrals,
bounces, a few complaints; some kinds never), received over six months up
to now, each with a provider payload of a few hundred bytes. The events are
written with set-based SQL a million at a time into the table with its
secondary indexes dropped, then the indexes are built again from their
definitions, and the table vacuumed and analysed, as autovacuum would have.

Then, logged in as a superuser through Django's test client, it times each
page (median of REPEAT after one warm-up): the admin's list, its page 1000,
each kind and provider filter, the date filters, the three searches, an
event's page, and the report of the newest and of the oldest issue (counted
afresh, and as shared from the cache). It prints a table, then each query on
the events under EXPLAIN (ANALYZE, BUFFERS): its execution time, the buffers
it touched and its top nodes.

--keep leaves the database in place; --reuse times an existing one again
(after migrating it), without generating anything. Figures are recorded in
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import tempfile
import time
from pathlib import Path

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/dwv_events_bench"
TABLE = "issues_deliveryevent"
CHUNK = 1_000_000

# The mix, out of 10,000: each kind's upper bound.
KINDS = [
    ("delivered", 7000),
    ("opened", 8500),
    ("clicked", 9100),
    ("deferred", 9400),
    ("bounced", 9600),
    ("soft_bounced", 9700),
    ("unsubscribed", 9750),
    ("rejected", 9780),
    ("failed", 9790),
    ("complained", 9795),
    ("queued", 9900),
    ("sent", 10000),
]
# Out of 1,000.
PROVIDERS = [
    ("sendgrid", 700),
    ("mailgun", 850),
    ("amazon_ses", 930),
    ("postmark", 970),
    ("smtp", 995),
    ("brevo", 1000),
]


def _case(expression: str, bounds: list[tuple[str, int]]) -> str:
    whens = " ".join(f"WHEN {expression} < {bound} THEN '{name}'" for name, bound in bounds)
    return f"CASE {whens} END"


EVENTS_INSERT = f"""
INSERT INTO {TABLE} (id, provider, event_id, event_type, delivery_id, recipient, message_id, reject_reason,
                     description, occurred_at, received_at, applied_at, payload)
SELECT e.g, e.provider, md5(e.g::text) || '|' || d.email, e.kind, CASE WHEN e.g % 100 = 0 THEN NULL ELSE d.id END,
       d.email, d.provider_message_id,
       CASE e.kind WHEN 'bounced' THEN 'bounced' WHEN 'complained' THEN 'spam' WHEN 'rejected' THEN 'blocked'
                   ELSE '' END,
       CASE e.kind
           WHEN 'bounced' THEN '550 5.1.1 <' || d.email || '>: Recipient address rejected: User unknown'
           WHEN 'soft_bounced' THEN '452 4.2.2 The email account that you tried to reach is over quota'
           WHEN 'deferred' THEN '421 4.7.0 Try again later, closing connection.'
           ELSE '' END,
       e.at - interval '2 seconds', e.at, e.at + interval '1 second',
       jsonb_build_object(
           'event', e.kind, 'email', d.email, 'timestamp', extract(epoch FROM e.at)::bigint,
           'smtp-id', d.provider_message_id, 'sg_event_id', md5(e.g::text),
           'sg_message_id', md5(d.id::text) || '.filterdrecv-5b6c7d8e9-abcde-1-6571A2B3-4.0',
           'category', jsonb_build_array('newsletter', 'issue-' || d.issue_id),
           'ip', '203.0.113.' || (e.g % 250), 'tls', 1,
           'useragent', 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)'
       ) || CASE WHEN e.kind = 'clicked'
                 THEN jsonb_build_object('url', 'https://example.org/articles/' || (e.g % 97)) ELSE '{{}}' END
  FROM (
      SELECT g, h, {_case("h % 10000", KINDS)} AS kind, {_case("(h / 10000) % 1000", PROVIDERS)} AS provider,
             %(first)s::timestamptz + (g - 1) * %(step)s * interval '1 second' + (h % 600) * interval '1 second' AS at
        FROM (SELECT g, (g * 2654435761) % 4294967296 AS h FROM generate_series(%(start)s::bigint, %(stop)s) g) s
  ) e
  -- Each issue's events in its own stretch of the six months, about any of its deliveries.
  JOIN issues_delivery d
    ON d.id = %(ledger_min)s + ((e.g - 1) * %(issues)s / %(events)s) * %(per_issue)s + (e.h / 7) % %(per_issue)s
""".replace("%", "%%").replace("%%(", "%(")  # noqa: S608 (a constant table name)


def _timed(label: str, started: float) -> float:
    seconds = time.perf_counter() - started
    print(f"  {label}: {seconds:.1f} s", flush=True)
    return seconds


def _ledger_generate(*, readers: int, issues: int) -> list[int]:
    """Make READERS readers and ISSUES sent issues with their ledgers, mostly delivered; return the issue ids."""
    from django.db import connection

    from bench.__main__ import _readers_generate
    from issues.delivery.ledger import ledger_write
    from issues.models import Issue
    from subscriptions.models import MailingList

    _readers_generate(readers)
    news = MailingList.objects.get()
    ids = []
    for n in range(issues):
        issue = Issue.objects.create(title=f"Issue {n + 1}", body="x", status=Issue.Status.SENDING)
        issue.lists.set([news])
        ledger_write(issue=issue)
        ids.append(issue.pk)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE issues_delivery
               SET status = CASE WHEN id %% 1000 < 15 THEN 'bounced' WHEN id %% 1000 < 25 THEN 'failed'
                                 WHEN id %% 10000 = 99 THEN 'complained' ELSE 'delivered' END,
                   last_error = CASE WHEN id %% 1000 < 25 THEN '550 5.1.1 User unknown' ELSE '' END,
                   attempts = 1,
                   sent_at = now() - interval '180 days' + (issue_id - %s) * %s * interval '1 day'
                             + (id %% 3600) * interval '1 second',
                   provider_message_id = '<' || id || '.' || issue_id || '@lists.example.org>'
            """,
            [min(ids), 180 / issues],
        )
        cursor.execute("ANALYZE issues_delivery")
    Issue.objects.filter(pk__in=ids).update(status=Issue.Status.SENT, sent_at=datetime.datetime.now(datetime.UTC))
    return ids


def _events_generate(n: int, *, issues: int) -> None:
    """Write N events with set-based SQL, a million per statement, into the table without its secondary indexes."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = %s::regclass AND contype = 'u'",
            [TABLE],
        )
        constraints = cursor.fetchall()
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname NOT IN "
            "(SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass)",
            [TABLE, TABLE],
        )
        indexes = cursor.fetchall()
        for name, _ in constraints:
            cursor.execute(f'ALTER TABLE {TABLE} DROP CONSTRAINT "{name}"')
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute("SELECT min(id), count(*) FROM issues_delivery")
        ledger_min, ledger_rows = cursor.fetchone()
        step = 180 * 86400 / n  # six months up to now
        first = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=180)
        for start in range(1, n + 1, CHUNK):
            started = time.perf_counter()
            stop = min(start + CHUNK - 1, n)
            cursor.execute(
                EVENTS_INSERT,
                {
                    "start": start,
                    "stop": stop,
                    "first": first,
                    "step": step,
                    "ledger_min": ledger_min,
                    "issues": issues,
                    "events": n,
                    "per_issue": ledger_rows // issues,
                },
            )
            _timed(f"events {start:,}-{stop:,}", started)
        cursor.execute(f"SELECT setval(pg_get_serial_sequence('{TABLE}', 'id'), %s)", [n])
        cursor.execute("SET maintenance_work_mem = '1GB'")
        for name, definition in constraints:
            started = time.perf_counter()
            cursor.execute(f'ALTER TABLE {TABLE} ADD CONSTRAINT "{name}" {definition}')
            _timed(name, started)
        for name, definition in indexes:
            started = time.perf_counter()
            cursor.execute(definition)
            _timed(name, started)
        started = time.perf_counter()
        cursor.execute(f"VACUUM (ANALYZE) {TABLE}")
        _timed("vacuum, analyze", started)


def _median_ms(call, repeat: int) -> tuple[float, float]:
    call()  # warm-up
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), max(samples)


def _plan_summary(sql: str) -> str:
    """Return a one-line summary of the query's plan run under EXPLAIN (ANALYZE, BUFFERS)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}")
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        import json

        plan = json.loads(plan)
    root = plan[0]

    def name(node: dict) -> str:
        if node.get("Index Name"):
            return f"{node['Node Type']} on {node['Index Name']}"
        if node.get("Relation Name"):
            return f"{node['Node Type']} on {node['Relation Name']}"
        return node["Node Type"]

    nodes = []
    node = root["Plan"]
    while node:
        nodes.append(name(node))
        children = node.get("Plans") or []
        node = children[0] if len(children) == 1 else None
        if len(children) > 1:
            nodes.append("(" + ", ".join(name(child) for child in children) + ")")
    top = root["Plan"]
    buffers = top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0)
    return f"{root['Execution Time']:9.1f} ms  {buffers:>8} buffers  " + " > ".join(nodes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--issues", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="leave the database in place afterwards")
    parser.add_argument("--reuse", action="store_true", help="time an existing database again; generate nothing")
    args = parser.parse_args()

    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)
    if url.rsplit("/", 1)[1] == "dwvlist_bench":
        raise SystemExit("dwvlist_bench holds another bench's data: name another database")
    from bench.database import _admin_url, database_fresh, django_migrated

    if not args.reuse:
        database_fresh(url)
    work = Path(tempfile.mkdtemp(prefix="dwvlist-events-bench-"))
    os.environ.update({"DEBUG": "1", "VAR_DIR": str(work), "LOG_LEVEL": "warning"})
    from dwvlist.embedded_redis import redis_ensure

    redis_url, embedded = redis_ensure(workdir=work / "redis", fallback=True)
    django_migrated(database_url=url, env={"REDIS_URL": redis_url})
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.core.cache import cache
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse
    from django.utils import timezone

    from dwvlist.redis import report_key
    from issues.feedback.events import EVENT_PROVIDERS, EVENT_TYPES
    from issues.models import DeliveryEvent, Issue

    settings.ALLOWED_HOSTS = ["*"]
    generated = ""
    if not args.reuse:
        started = time.perf_counter()
        print(f"writing {args.issues} issues to {args.readers:,} readers ...", flush=True)
        _ledger_generate(readers=args.readers, issues=args.issues)
        ledger_seconds = _timed("ledger", started)
        started = time.perf_counter()
        print(f"writing {args.events:,} events ...", flush=True)
        _events_generate(args.events, issues=args.issues)
        events_seconds = _timed("events with their indexes", started)
        generated = f"ledger {ledger_seconds:.0f} s, events {events_seconds:.0f} s"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT pg_size_pretty(pg_total_relation_size('{TABLE}')), count(*) FROM {TABLE}")  # noqa: S608
        size, count = cursor.fetchone()
    print(f"{count:,} events, {size} with indexes", flush=True)

    admin, _ = User.objects.get_or_create(username="bench-admin", defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(admin)
    newest = DeliveryEvent.objects.order_by("-id").values_list("id", "recipient", "message_id", "event_id")[:1000]
    sample_id, address, message_id, event_id = newest[999]
    now = timezone.localtime()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    day = datetime.timedelta(days=1)
    tomorrow = today + day

    def dates(since, until) -> str:
        return f"?received_at__gte={since.date()}+00:00:00%2B00:00&received_at__lt={until.date()}+00:00:00%2B00:00"

    changelist = "/admin/issues/deliveryevent/"
    far = min(1000, count // 50)  # the admin's page 1000, in a table that has one
    pages = [("list", changelist), (f"list, page {far}", f"{changelist}?p={far}")]
    pages += [(f"kind {kind}", f"{changelist}?event_type={kind}") for kind in EVENT_TYPES]
    pages += [(f"provider {provider}", f"{changelist}?provider={provider}") for provider in EVENT_PROVIDERS]
    pages += [
        ("kind bounced, provider postmark", f"{changelist}?event_type=bounced&provider=postmark"),
        ("received today", changelist + dates(today, tomorrow)),
        ("received past 7 days", changelist + dates(today - 7 * day, tomorrow)),
        ("received this month", changelist + dates(today.replace(day=1), tomorrow)),
        ("received this year", changelist + dates(today.replace(month=1, day=1), tomorrow)),
        ("received one day 3 months ago", changelist + dates(today - 90 * day, today - 89 * day)),
        ("search whole address", f"{changelist}?q={address.upper()}"),
        ("search message id", f"{changelist}?q={message_id.replace('<', '%3C').replace('>', '%3E')}"),
        ("search event id prefix", f"{changelist}?q={event_id[:12]}"),
        ("search, no match", f"{changelist}?q=nobody@example.net"),
        ("an event's page", f"{changelist}{sample_id}/change/"),
    ]
    sent = list(Issue.objects.filter(status=Issue.Status.SENT).order_by("id"))

    results = []
    plans = []

    def timed(label: str, call) -> None:
        reset_queries()  # the log keeps the last 9,000 queries: capture from an empty one
        with CaptureQueriesContext(connection) as queries:
            call()
        captured = list(queries)  # read before the next request empties the log
        median, worst = _median_ms(call, args.repeat)
        results.append((label, median, worst))
        print(f"  {label:<40} {median:8.0f} ms", flush=True)
        for query in captured:
            sql = query["sql"]
            if TABLE in sql and sql.lstrip().upper().startswith("SELECT"):
                plans.append((label, _plan_summary(sql)))

    def page(path: str):
        def call():
            response = client.get(path)
            assert response.status_code == 200, (path, response.status_code)

        return call

    def report_counted(issue: Issue):
        url = reverse("editor:issue_report", kwargs={"issue_id": issue.pk})

        def call():
            cache.delete(report_key(issue.pk, issue.updated_at.isoformat() if issue.updated_at else ""))
            assert client.get(url).status_code == 200

        return call

    for label, path in pages:
        timed(label, page(path))
    if sent:
        # All the same size; the oldest's events are the furthest from the newest ids.
        timed("report of the newest issue, counted", report_counted(sent[-1]))
        timed("report of the oldest issue, counted", report_counted(sent[0]))
        timed("report, shared from the cache", page(reverse("editor:issue_report", kwargs={"issue_id": sent[-1].pk})))

    print()
    print(f"{count:,} events ({size} with indexes); {generated or 'reused'}; median of {args.repeat}")
    print()
    print("| page | median | slowest |")
    print("| --- | ---: | ---: |")
    for label, median, worst in results:
        print(f"| {label} | {median:,.0f} ms | {worst:,.0f} ms |")
    print()
    print("Each query on the events, under EXPLAIN (ANALYZE, BUFFERS):")
    for label, summary in plans:
        print(f"  {label:<36} {summary}")

    connection.close()
    if embedded:
        embedded.stop()
    if not args.keep:
        import psycopg

        with psycopg.connect(_admin_url(url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

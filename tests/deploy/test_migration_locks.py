"""Upgrading a live site: the migrations hold no lock that makes sending or webhooks wait.

A PostgreSQL database at the initial migrations gets a million deliveries
and a million provider events (generate_series, so it takes seconds), then
every later migration is applied with `manage.py migrate` while a writer
does what a live site does (marks ledger rows delivered, writes new ledger rows,
records webhook events) and times each of its statements. No statement may
wait a second. The same writer, against an old-style data pass (one UPDATE
over the whole ledger in one transaction), waits far longer: the
measurement sees locks when there are some. The new-style data pass
(dwvlist.migration_ops.rows_update_batched, a range at a time) does not.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from django.db import connection

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

ROOT = Path(__file__).resolve().parents[2]
ROWS = 1_000_000
MAX_WAIT = 1.0  # seconds any one statement of the live site may take
# The squashed initial migrations: the database is filled at this state, and
# everything after it is what an upgrade applies.
INITIAL = [("subscriptions", "0003_roles"), ("issues", "0003_ledger_fillfactor")]


def _conninfo(dbname: str) -> dict:
    conf = connection.settings_dict
    return {
        "host": conf.get("HOST") or "127.0.0.1",
        "port": conf.get("PORT") or 5432,
        "user": conf.get("USER") or None,
        "password": conf.get("PASSWORD") or None,
        "dbname": dbname,
    }


def _url(info: dict) -> str:
    auth = (info["user"] or "") + (f":{info['password']}" if info["password"] else "")
    return f"postgres://{auth}{'@' if auth else ''}{info['host']}:{info['port']}/{info['dbname']}"


@pytest.fixture(scope="module")
def big_database():
    """Return the conninfo of a database at the initial migrations with ROWS deliveries and ROWS events."""
    if connection.vendor != "postgresql":
        pytest.skip("the lock test needs PostgreSQL (set DATABASE_URL to a postgres:// URL)")
    name = f"{connection.settings_dict['NAME']}_locks"
    admin = psycopg.connect(**_conninfo("postgres"), autocommit=True)
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{name}"')
    info = _conninfo(name)
    try:
        for app, migration in INITIAL:
            _manage("migrate", app, migration, database_url=_url(info))
        started = time.monotonic()
        with psycopg.connect(**info, autocommit=True) as db:
            issue_id = db.execute(
                "INSERT INTO issues_issue (title, subtitle, byline, body, slug, status, snapshot_subject,"
                " snapshot_html, snapshot_text, started_at, created_at, updated_at)"
                " VALUES ('Plant closings', '', '', 'Body', 'plant-closings', 'sending', 'Plant closings',"
                " '<p>Body</p>', 'Body', now(), now(), now()) RETURNING id"
            ).fetchone()[0]
            db.execute(
                "INSERT INTO issues_delivery (email, status, provider_message_id, attempts, last_error,"
                " claim_token, sent_at, created_at, updated_at, issue_id, subscriber_id)"
                " SELECT 'reader' || g || '@example.org', CASE WHEN g %% 2 = 0 THEN 'sent' ELSE 'pending' END,"
                " CASE WHEN g %% 2 = 0 THEN 'msg-' || g ELSE '' END, g %% 2, '', '',"
                " CASE WHEN g %% 2 = 0 THEN now() END, now(), now(), %s, g"
                " FROM generate_series(1, %s) AS g",
                [issue_id, ROWS],
            )
            db.execute(
                "INSERT INTO issues_deliveryevent (provider, event_id, event_type, recipient, message_id,"
                " reject_reason, description, occurred_at, received_at, applied_at, payload, delivery_id)"
                " SELECT 'mailgun', 'event-' || d.id, 'delivered', d.email, 'msg-' || d.id, '', '',"
                " now(), now(), now(), '{}'::jsonb, d.id FROM issues_delivery d"
            )
            db.execute("ANALYZE issues_delivery")
            db.execute("ANALYZE issues_deliveryevent")
        print(f"{2 * ROWS} rows written in {time.monotonic() - started:.1f}s")
        yield info | {"issue_id": issue_id}
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _manage(*args: str, database_url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url, "DEBUG": "1"}
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


class LiveSite(threading.Thread):
    """A writer doing what sending and webhooks do, timing every statement."""

    runs = 0

    def __init__(self, info: dict) -> None:
        super().__init__(daemon=True)
        LiveSite.runs += 1
        self.first_new_reader = ROWS + LiveSite.runs * 1_000_000
        self.info = {k: v for k, v in info.items() if k != "issue_id"}
        self.issue_id = info["issue_id"]
        self.stop_event = threading.Event()
        self.slowest = 0.0
        self.slowest_statement = ""
        self.statements = 0
        self.errors: list[str] = []

    def _timed(self, db: psycopg.Connection, sql: str, params: list) -> None:
        started = time.monotonic()
        try:
            db.execute(sql, params)
        except psycopg.errors.LockNotAvailable as exc:  # waited lock_timeout: counts as that long
            self.errors.append(str(exc))
        took = time.monotonic() - started
        self.statements += 1
        if took > self.slowest:
            self.slowest, self.slowest_statement = took, sql.split(" (")[0][:60]

    def run(self) -> None:
        with psycopg.connect(**self.info, autocommit=True) as db:
            db.execute("SET lock_timeout = '20s'")
            n = 0
            while not self.stop_event.is_set():
                n += 1
                row = (n * 7919 + LiveSite.runs * 104729) % ROWS + 1  # spread over the ledger
                # A provider's "delivered" event applied to its reader's row.
                self._timed(
                    db,
                    "UPDATE issues_delivery SET delivered_at = now(), updated_at = now()"
                    " WHERE id = (SELECT min(id) FROM issues_delivery) + %s - 1",
                    [row],
                )
                self._timed(
                    db,
                    "INSERT INTO issues_deliveryevent (provider, event_id, event_type, recipient, message_id,"
                    " reject_reason, description, received_at, payload) VALUES ('mailgun', %s, 'opened',"
                    " 'reader1@example.org', 'msg-2', '', '', now(), '{}'::jsonb)",
                    [f"live-{n}-{time.monotonic_ns()}"],
                )
                self._timed(
                    db,
                    "INSERT INTO issues_delivery (email, status, provider_message_id, attempts, last_error,"
                    " claim_token, created_at, updated_at, issue_id, subscriber_id)"
                    " VALUES (%s, 'pending', '', 0, '', '', now(), now(), %s, %s)",
                    [f"new{n}@example.org", self.issue_id, self.first_new_reader + n],
                )
                time.sleep(0.01)

    def __enter__(self) -> LiveSite:
        self.start()
        time.sleep(0.5)  # running before the work starts
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(0.5)
        self.stop_event.set()
        self.join(timeout=60)


def test_upgrading_a_million_row_ledger_makes_no_writer_wait(big_database):
    with LiveSite(big_database) as site:
        started = time.monotonic()
        applied = _manage("migrate", "--noinput", database_url=_url(big_database))
        took = time.monotonic() - started
    print(
        f"migrate took {took:.1f}s; the live writer's slowest statement {site.slowest:.3f}s "
        f"({site.slowest_statement}) of {site.statements}\n{applied.stdout}"
    )
    assert "Applying" in applied.stdout, "there were migrations to apply"
    assert site.statements > 30
    assert not site.errors
    assert site.slowest < MAX_WAIT, f"a writer waited {site.slowest:.2f}s on: {site.slowest_statement}"
    with psycopg.connect(**{k: v for k, v in big_database.items() if k != "issue_id"}) as db:
        invalid = db.execute(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE NOT i.indisvalid"
        ).fetchall()
    assert invalid == [], "every index built CONCURRENTLY is complete"


def test_a_data_pass_over_the_ledger_waits_writers_unless_batched(big_database):
    info = {k: v for k, v in big_database.items() if k != "issue_id"}
    # The old style: one UPDATE over the whole ledger, in one transaction.
    with LiveSite(big_database) as whole, psycopg.connect(**info, autocommit=True) as db:
        db.execute("UPDATE issues_delivery SET last_error = last_error || ''")

    # The new style, as a data migration with atomic = False runs it: a range at a time.
    batched_pass = (
        "from django.db import connection\n"
        "from dwvlist.migration_ops import rows_update_batched\n"
        "with connection.schema_editor(atomic=False) as editor:\n"
        "    print(rows_update_batched(editor, table='issues_delivery',"
        " assignments='last_error = last_error || %s', params=['']))\n"
    )
    with LiveSite(big_database) as batched:
        changed = _manage("shell", "-c", batched_pass, database_url=_url(info)).stdout.split()[-1]
    assert int(changed) >= ROWS
    print(f"one UPDATE: the writer waited {whole.slowest:.2f}s; batched: {batched.slowest:.3f}s")
    assert batched.slowest < MAX_WAIT, f"a writer waited {batched.slowest:.2f}s on: {batched.slowest_statement}"
    # The measurement sees a writer kept waiting: by the whole-table pass, several times longer
    # (how much longer depends on the machine; about 50 times on an idle one).
    assert whole.slowest > 4 * max(batched.slowest, 0.05)

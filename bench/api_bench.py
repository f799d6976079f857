"""Benchmark the API's subscriber listing: N readers read back in cursor pages of 1,000 on PostgreSQL.

    .venv/bin/python -m bench.api_bench [--readers 1000000] [--page 1000] [--server postgres://postgres@127.0.0.1:5432/]

Creates a throw-away database on the server, migrates it, writes N readers
(each on one list, with a consent record) with set-based SQL, makes an
admin's token, then walks GET /api/v1/subscribers?limit=1000 from the first
page to the last through Django's whole request stack (middleware, token
check, rate limit in Redis, validation, JSON), in process, without a
socket, after one untimed call that loads the URLconf. Prints rows per
second, the slowest page, and drops the database.
Needs Redis at REDIS_URL (the rate limit); the limit itself is turned off.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from bench.database import database_throwaway


def readers_write(connection, count: int, list_id: int) -> None:
    """Write `count` readers and their subscriptions with two INSERT ... SELECT statements."""
    from subscriptions.models import Subscriber, Subscription

    subscriber, subscription = Subscriber._meta.db_table, Subscription._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {subscriber} (email, name, created_at, updated_at)
                SELECT 'reader' || g || '@example.org', 'Reader ' || g, now(), now()
                  FROM generate_series(1, %s) g""",  # noqa: S608 (table names from the models)
            [count],
        )
        cursor.execute(
            f"""INSERT INTO {subscription}
                    (subscriber_id, mailing_list_id, status, consent_source, consented_at, consent_detail,
                     confirmed_at, unsubscribe_source, created_at, updated_at)
                SELECT id, %s, 'active', 'import', now(), 'bench', now(), '', now(), now() FROM {subscriber}""",  # noqa: S608
            [list_id],
        )
        cursor.execute(f"ANALYZE {subscriber}; ANALYZE {subscription}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=1_000_000)
    parser.add_argument("--page", type=int, default=1000)
    parser.add_argument("--server", default=os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432/"))
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    args = parser.parse_args()

    with database_throwaway(server=args.server, prefix="dwvlist_api_bench", keep=args.keep):
        from django.conf import settings
        from django.contrib.auth.models import User
        from django.db import connection
        from django.test import Client

        from api.services import api_token_create
        from subscriptions.models import MailingList

        settings.API_RATE_PER_MINUTE = 0
        settings.ALLOWED_HOSTS = ["*"]
        news = MailingList.objects.create(name="News", slug="news", from_name="News", from_email="news@example.org")
        started = time.perf_counter()
        readers_write(connection, args.readers, news.pk)
        print(f"wrote {args.readers:,} readers in {time.perf_counter() - started:.1f} s")
        admin = User.objects.create_superuser("bench", "bench@example.org", "bench-password-not-used")
        secret = api_token_create(user=admin, name="bench", scopes=["subscribers:read"]).secret

        client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
        # One call first, untimed: a process's first request loads the URLconf and the API's routes.
        assert client.get("/api/v1/lists").status_code == 200
        rows, pages, slowest, cursor = 0, 0, 0.0, None
        started = time.perf_counter()
        while True:
            path = f"/api/v1/subscribers?limit={args.page}" + (f"&cursor={cursor}" if cursor else "")
            page_started = time.perf_counter()
            response = client.get(path)
            slowest = max(slowest, time.perf_counter() - page_started)
            if response.status_code != 200:
                print(f"page {pages + 1} answered {response.status_code}: {response.content[:300]!r}")
                return 1
            body = response.json()
            rows += len(body["items"])
            pages += 1
            cursor = body["next_cursor"]
            if cursor is None:
                break
        elapsed = time.perf_counter() - started
        print(
            f"listed {rows:,} readers in {pages:,} pages of {args.page:,} in {elapsed:.1f} s: "
            f"{rows / elapsed:,.0f} rows/s; slowest page {slowest * 1000:.0f} ms"
        )
        if rows != args.readers:
            print(f"expected {args.readers:,} rows")
            return 1
        return 0


if __name__ == "__main__":
    sys.exit(main())

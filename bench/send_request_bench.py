"""How long the editor's "Send now" takes as a web request at N readers.

    python -m bench.send_request_bench [-n 1000000]

Runs on a fresh PostgreSQL database (BENCH_DATABASE_URL, default
`dwvlist_bench`) with N confirmed readers, through Django's test client
and the real middleware, logged in as an editor: the confirmation page
(GET, which counts the readers) and the send itself (POST, which freezes
the snapshot, moves the issue to sending and queues the ledger task). No
worker runs: the queued task is then run here, to time the ledger it
writes and check that nothing else was written by the request.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/dwvlist_bench"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.send_request_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=1_000_000, help="readers (default 1,000,000)")
    parser.add_argument("--repeat", type=int, default=3, help="sends to time, each a new issue (default 3)")
    args = parser.parse_args()

    from bench.__main__ import ARTICLE, _readers_generate
    from bench.database import database_fresh, django_migrated

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
            "ALLOWED_HOSTS": "testserver",
        }
    )
    from dwvlist.embedded_redis import redis_ensure

    redis_url, embedded = redis_ensure(workdir=work / "redis", fallback=True)
    django_migrated(database_url=database_url, env={"REDIS_URL": redis_url})
    import redis
    from django.apps import apps
    from django.contrib.auth.models import Group, User
    from django.test import Client

    from issues.delivery.tasks import complete_ledger
    from issues.models import Delivery, Issue
    from subscriptions.models import MailingList
    from subscriptions.roles import roles_ensure

    try:
        redis.Redis.from_url(redis_url).flushdb()
        print(f"generating {args.n:,} readers on PostgreSQL ...", flush=True)
        _readers_generate(args.n)
        roles_ensure(apps)
        editor = User.objects.create_user("bench-editor", password="x" * 20, is_staff=True)
        editor.groups.add(Group.objects.get(name="Editors"))
        client = Client()
        client.force_login(editor)
        confirm_times, send_times, ledger_times = [], [], []
        for round_ in range(args.repeat):
            issue = Issue.objects.create(title=f"When the plant closes ({round_})", byline="The editors", body=ARTICLE)
            issue.lists.set(MailingList.objects.all())
            url = f"/editor/issues/{issue.pk}/send/"
            started = time.perf_counter()
            page = client.get(url)
            confirm_times.append(time.perf_counter() - started)
            assert page.status_code == 200 and f"Send to {args.n:,}".replace(",", "") in page.content.decode().replace(
                ",", ""
            ), page.status_code
            started = time.perf_counter()
            response = client.post(url)
            send_times.append(time.perf_counter() - started)
            assert response.status_code == 302, response.status_code
            assert Issue.objects.get(pk=issue.pk).status == "sending"
            assert not Delivery.objects.filter(issue=issue).exists(), "the request wrote ledger rows"
            # The queued task's work, timed here (the bench's workers would run it).
            Issue.objects.filter(pk=issue.pk).update(status="sending")
            started = time.perf_counter()
            written = complete_ledger(issue.pk)
            ledger_times.append(time.perf_counter() - started)
            assert written == args.n, (written, args.n)
            Issue.objects.filter(pk=issue.pk).update(status="cancelled")
            Delivery.objects.filter(issue=issue).delete()
        queued = redis.Redis.from_url(redis_url).llen("default")
    finally:
        if embedded:
            embedded.stop()
    print()
    print(f"readers                       {args.n:,}")
    print(f"confirmation page (GET)       median {statistics.median(confirm_times) * 1000:,.0f} ms of {args.repeat}")
    print(f"send now (POST, the request)  median {statistics.median(send_times) * 1000:,.0f} ms of {args.repeat}")
    print(f"ledger task afterwards        median {statistics.median(ledger_times):,.2f} s (not in the request)")
    print(f"tasks left queued             {queued} (the ledger tasks the requests queued)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

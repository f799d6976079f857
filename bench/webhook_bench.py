"""Benchmark provider webhooks over HTTP against a large ledger: SendGrid batches and Mailgun single events.

    .venv/bin/python -m bench.webhook_bench [--mode both|sendgrid|mailgun] [--events 20000]
        [--batch 1000] [--clients 8] [--workers 2] [--threads 1] [--no-metadata]

Run it after `python -m bench --transport mailgun -n 1000000`, which leaves
its database (BENCH_DATABASE_URL) holding one issue sent to N readers.
Starts gunicorn with --workers worker processes (sync, or of --threads
threads) on a loopback port against that database, and --drainers Celery
workers that store the events requests leave waiting in Redis; picks random
sent readers, and posts a "delivered" event for each as the provider does:
- sendgrid: JSON arrays of --batch events per request (SendGrid posts up to
  about a thousand), from 2 clients;
- mailgun: one signed event per request, from --clients concurrent clients.
Each event carries the provider's message id (found through SentMessage)
and, as our sends put there, the issue, reader and ledger ids in its
metadata (--no-metadata leaves them out: the reader is then found by address
within the batch's id range). Prints events per second twice: as the
provider saw them answered, and sustained (from the first post until the
last event's effect is in the ledger), request times (median, p99) and how
many readers the events marked delivered. Events are posted once per
reader: run it again and it picks readers not yet marked.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench:webhook-secret"
SIGNING_KEY = "bench-mailgun-signing-key"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _readers(count: int) -> list[tuple[int, int, int, str, str]]:
    """Return (delivery id, issue id, subscriber id, email, message id) of random readers still only sent."""
    from django.db.models import Max, Min

    from issues.models import Delivery

    span = Delivery.objects.filter(status=Delivery.Status.SENT).aggregate(low=Min("id"), high=Max("id"))
    if span["low"] is None:
        return []
    picked: dict[int, tuple] = {}
    for _ in range(20):
        if len(picked) >= count:
            break
        ids = random.sample(range(span["low"], span["high"] + 1), min(4 * count, span["high"] - span["low"] + 1))
        for start in range(0, len(ids), 20_000):
            rows = Delivery.objects.filter(pk__in=ids[start : start + 20_000], status=Delivery.Status.SENT)
            for row in rows.values_list("id", "issue_id", "subscriber_id", "email", "provider_message_id"):
                picked.setdefault(row[0], row)
    readers = list(picked.values())
    random.shuffle(readers)
    return readers[:count]


def _sendgrid_bodies(readers, batch: int, metadata: bool) -> list[tuple[bytes, int]]:
    now = int(time.time())
    bodies = []
    for start in range(0, len(readers), batch):
        events = []
        for delivery_id, issue_id, subscriber_id, email, message_id in readers[start : start + batch]:
            event = {
                "email": email,
                "timestamp": now,
                "smtp-id": f"<{uuid.uuid4().hex}@ismtpd-555>",
                "event": "delivered",
                "category": ["issue"],
                "sg_event_id": uuid.uuid4().hex,
                "sg_message_id": f"{uuid.uuid4().hex}.filter0001.16648.5515E0B88.0",
                "anymail_id": message_id,
                "response": "250 2.0.0 OK",
                "tls": 1,
            }
            if metadata:  # our engine's metadata: SendGrid returns custom_args as top-level fields
                event.update(issue_id=str(issue_id), subscriber_id=str(subscriber_id), delivery_id=str(delivery_id))
            events.append(event)
        bodies.append((json.dumps(events).encode(), len(events)))
    return bodies


def _mailgun_bodies(readers, metadata: bool) -> list[tuple[bytes, int]]:
    bodies = []
    for delivery_id, issue_id, subscriber_id, email, message_id in readers:
        stamp, token = str(int(time.time())), secrets.token_hex(25)
        signature = hmac.new(SIGNING_KEY.encode(), f"{stamp}{token}".encode(), hashlib.sha256).hexdigest()
        variables = (
            {"issue_id": str(issue_id), "subscriber_id": str(subscriber_id), "delivery_id": str(delivery_id)}
            if metadata
            else {}
        )
        body = {
            "signature": {"timestamp": stamp, "token": token, "signature": signature},
            "event-data": {
                "event": "delivered",
                "timestamp": float(stamp),
                "id": uuid.uuid4().hex[:22],
                "log-level": "info",
                "recipient": email,
                "recipient-domain": email.rpartition("@")[2],
                "tags": ["issue"],
                "user-variables": variables,
                "message": {"headers": {"to": email, "message-id": message_id.strip("<>"), "subject": "Issue"}},
                "delivery-status": {"code": 250, "message": "OK", "description": "", "tls": True},
            },
        }
        bodies.append((json.dumps(body).encode(), 1))
    return bodies


def _post_all(port: int, path: str, bodies: list[tuple[bytes, int]], clients: int) -> tuple[float, list[float]]:
    """Post every body from `clients` threads; return (wall seconds, request seconds)."""
    auth = "Basic " + base64.b64encode(SECRET.encode()).decode()
    lock = threading.Lock()
    queue = list(reversed(bodies))
    times: list[float] = []
    failures: list[str] = []

    def client() -> None:
        while True:
            with lock:
                if not queue:
                    return
                body, _ = queue.pop()
            started = time.perf_counter()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            connection.request(
                "POST", path, body, {"Content-Type": "application/json", "Authorization": auth, "Connection": "close"}
            )
            response = connection.getresponse()
            response.read()
            connection.close()
            elapsed = time.perf_counter() - started
            with lock:
                times.append(elapsed)
                if response.status != 200:
                    failures.append(str(response.status))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} requests failed: {sorted(set(failures))}")
    return wall, times


def _p99(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _server_start(port: int, workers: int, threads: int, env: dict, log: Path) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "dwvlist.wsgi:application", "--workers", str(workers),
         "--threads", str(threads), "--bind", f"127.0.0.1:{port}", "--timeout", "120", "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True,  # noqa: SIM115
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            return server
        except OSError:
            time.sleep(0.3)
    os.killpg(server.pid, signal.SIGTERM)
    raise SystemExit(f"gunicorn did not start; see {log}")


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def _cpu_groups(
    server: subprocess.Popen, drainers: list[subprocess.Popen], database: str
) -> dict[str, list[psutil.Process]]:
    """The processes whose CPU time is counted per event: web workers, drainers, this database's backends, us."""

    def family(pid: int) -> list[psutil.Process]:
        parent = psutil.Process(pid)
        return [parent, *parent.children(recursive=True)]

    backends = []
    for process in psutil.process_iter(["cmdline"]):
        title = " ".join(process.info["cmdline"] or [])
        if title.startswith("postgres:") and f" {database} " in title:
            backends.append(process)
    return {
        "web": family(server.pid),
        "drain": [p for d in drainers for p in family(d.pid)],
        "postgres": backends,
        "client": [psutil.Process()],
    }


def _workers_wait(count: int, timeout: float = 120) -> None:
    """Wait until `count` Celery workers are up (their heartbeats are in Redis)."""
    from dwvlist.redis import WORKER_PREFIX, redis_client

    deadline = time.monotonic() + timeout
    while len(list(redis_client().scan_iter(WORKER_PREFIX + "bench*"))) < count:
        if time.monotonic() > deadline:
            raise SystemExit("the drain workers did not start")
        time.sleep(0.2)


def _delivered_wait(delivery_ids: list[int], started: float, timeout: float = 300) -> tuple[int, float]:
    """Wait until these ledger rows are all marked delivered; return how many are, and the seconds since started."""
    from issues.models import Delivery

    deadline = time.monotonic() + timeout
    while True:
        delivered = 0
        for start in range(0, len(delivery_ids), 20_000):
            chunk = delivery_ids[start : start + 20_000]
            delivered += Delivery.objects.filter(pk__in=chunk, status=Delivery.Status.DELIVERED).count()
        if delivered == len(delivery_ids) or time.monotonic() > deadline:
            return delivered, time.perf_counter() - started
        time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["both", "sendgrid", "mailgun"], default="both")
    parser.add_argument("--events", type=int, default=20_000, help="events per mode")
    parser.add_argument("--batch", type=int, default=1000, help="events per SendGrid post")
    parser.add_argument("--clients", type=int, default=8, help="concurrent Mailgun clients")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker (1: sync workers)")
    parser.add_argument("--drainers", type=int, default=2, help="Celery workers storing the waiting events")
    parser.add_argument("--no-metadata", action="store_true", help="events without our ids in their metadata")
    args = parser.parse_args()

    database_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dwvlist_bench")
    work = Path(tempfile.mkdtemp(prefix="dwvlist-webhook-bench-"))
    from dwvlist.embedded_redis import redis_ensure

    redis_url, embedded = redis_ensure(workdir=work / "redis", fallback=True)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "127.0.0.1",
        "VAR_DIR": str(work),
        "LOG_LEVEL": "warning",
        "ANYMAIL_WEBHOOK_SECRET": SECRET,
        "ANYMAIL_MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY,
        "ANYMAIL_SENDGRID_API_KEY": "bench",  # a provider's endpoint answers only where it is configured
        "FEEDBACK_INLINE_SECONDS": "3600",  # every effect applied in the request, as a quiet server does
        "DB_CONN_MAX_AGE": "600",
    }
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "VAR_DIR")})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dwvlist.settings")
    os.environ["DEBUG"] = "1"
    import django

    django.setup()
    from issues.models import Delivery

    ledger = Delivery.objects.count()
    modes = ["sendgrid", "mailgun"] if args.mode == "both" else [args.mode]
    readers = _readers(args.events * len(modes) + 50)
    if len(readers) < args.events * len(modes) + 50:
        print("not enough sent readers in the bench database: run python -m bench --transport mailgun first")
        return 1
    port = _free_port()
    server = _server_start(port, args.workers, args.threads, env, work / "gunicorn.log")
    from bench.__main__ import _workers_start
    from dwvlist.redis import WORKER_PREFIX, redis_client

    for key in redis_client().scan_iter(WORKER_PREFIX + "bench*"):  # an earlier run's
        redis_client().delete(key)
    drainers = _workers_start(args.drainers, env, work)
    _workers_wait(args.drainers)
    ok = True
    try:
        # Warm up each worker (imports, connections) with readers not counted below.
        _post_all(port, "/webhooks/mailgun/tracking/", _mailgun_bodies(readers[:30], True), args.workers)
        _post_all(port, "/webhooks/sendgrid/tracking/", _sendgrid_bodies(readers[30:50], 5, True), args.workers)
        readers = readers[50:]
        print(f"ledger rows             {ledger:,}")
        kind = "sync workers" if args.threads == 1 else f"workers of {args.threads} threads"
        print(f"server                  gunicorn, {args.workers} {kind}; metadata {not args.no_metadata}")
        for index, mode in enumerate(modes):
            chosen = readers[index * args.events : (index + 1) * args.events]
            if mode == "sendgrid":
                bodies, clients, path = _sendgrid_bodies(chosen, args.batch, not args.no_metadata), 2, "sendgrid"
            else:
                bodies, clients, path = _mailgun_bodies(chosen, not args.no_metadata), args.clients, "mailgun"
            groups = _cpu_groups(server, drainers, database_url.rsplit("/", 1)[1])
            cpu_before = {name: _cpu_seconds(processes) for name, processes in groups.items()}
            started = time.perf_counter()
            wall, times = _post_all(port, f"/webhooks/{path}/tracking/", bodies, clients)
            delivered, applied_wall = _delivered_wait([r[0] for r in chosen], started)
            cpu = {name: (_cpu_seconds(groups[name]) - cpu_before[name]) / len(chosen) * 1e6 for name in groups}
            per_request = len(chosen) // len(bodies)
            print()
            print(f"{mode}: {len(chosen):,} events, {per_request} per request, {clients} clients")
            print(f"  answered              {len(chosen) / wall:,.0f} events/s (all posts answered in {wall:.1f} s)")
            print(f"  sustained             {len(chosen) / applied_wall:,.0f} events/s "
                  f"(first post to the last effect in the ledger: {applied_wall:.1f} s)")  # fmt: skip
            print(f"  request time          median {statistics.median(times) * 1000:.0f} ms, "
                  f"p99 {_p99(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms")  # fmt: skip
            print("  CPU per event         " + ", ".join(f"{name} {value:,.0f} µs" for name, value in cpu.items())
                  + f" (total {sum(cpu.values()):,.0f} µs)")  # fmt: skip
            print(f"  marked delivered      {delivered:,} of {len(chosen):,}")
            ok = ok and delivered == len(chosen)
    finally:
        for process in (server, *drainers):
            os.killpg(process.pid, signal.SIGTERM)
        for process in (server, *drainers):
            process.wait(timeout=30)
        if embedded:
            embedded.stop()
    print("RESULT", "ok" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

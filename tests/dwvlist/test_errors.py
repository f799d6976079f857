"""Error reports: to Sentry when SENTRY_DSN is set (here a Sentry endpoint on loopback), nothing otherwise."""

from __future__ import annotations

import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dwvlist.celery import task_queue
from tests.conftest import WorkerProcess, child_env


class SentryIngest:
    """A loopback HTTP server that keeps the envelopes sentry-sdk posts to it."""

    def __init__(self) -> None:
        self.envelopes: list[tuple[str, bytes]] = []
        ingest = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                ingest.envelopes.append((self.path, body))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def dsn(self) -> str:
        return f"http://publickey@127.0.0.1:{self.server.server_address[1]}/42"

    def events(self) -> list[dict]:
        """Return the error events received (an envelope is a header line, then item header and payload lines)."""
        found = []
        for _, body in self.envelopes:
            lines = body.split(b"\n")
            for header, payload in zip(lines[1::2], lines[2::2], strict=False):
                if json.loads(header).get("type") == "event":
                    found.append(json.loads(payload))
        return found

    def __enter__(self) -> SentryIngest:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.worker
@pytest.mark.slow
def test_a_failing_task_is_reported_to_sentry_without_the_readers_address(transactional_db):
    with SentryIngest() as ingest:
        worker = WorkerProcess(env=child_env(SENTRY_DSN=ingest.dsn, SENTRY_ENVIRONMENT="ci", LOG_FORMAT="json"))
        try:
            worker.wait_ready()
            task_queue("issues.tasks.send_test", 987654, ["victim.reader@example.org"])
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not ingest.events():
                time.sleep(0.2)
        finally:
            worker.stop()
        events = ingest.events()
    assert events, "no error reached the Sentry endpoint"
    (event,) = events
    assert ingest.envelopes[0][0] == "/api/42/envelope/"
    assert event["environment"] == "ci"
    (exception,) = event["exception"]["values"]
    assert exception["type"] == "Issue.DoesNotExist"
    assert exception["mechanism"]["type"] == "celery"
    raw = b"".join(body for _, body in ingest.envelopes)
    assert b"victim.reader@example.org" not in raw
    assert b"addr:" in raw  # the address is there as its hash, like in the logs


def test_nothing_is_reported_without_a_dsn(settings):
    import sentry_sdk

    assert settings.SENTRY_DSN == ""
    assert not sentry_sdk.get_client().is_active()

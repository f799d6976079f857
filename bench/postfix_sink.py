"""Postfix's smtp-sink (a C SMTP server that accepts and drops mail) as the bench's SMTP sink.

    python -m bench --transport smtp --sink postfix -n 100000

The same C sink other mailing-list systems are measured against, so the
figure can be compared with theirs. Debian's `postfix` package ships it as
/usr/sbin/smtp-sink (install with DEBIAN_FRONTEND=noninteractive apt-get
install postfix; the Postfix daemon itself is not needed and not started).
It counts messages, not who they were for: the bench checks the ledger for
duplicates, and the message count (our SMTP path sends one message per
reader) for the total.
"""

from __future__ import annotations

import re
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SMTP_SINK = Path("/usr/sbin/smtp-sink")
_COUNTER = re.compile(rb"mesg=(\d+)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Counted:
    """The parts of the Python sinks' tally the bench reads, from smtp-sink's running counter."""

    missing_unsubscribe = 0  # not checked by the C sink
    shared_unsubscribe = 0
    duplicates = 0  # the ledger is checked instead

    def __init__(self, output: Path) -> None:
        self.output = output
        self._count = 0
        self.first_at: float | None = None
        self.last_at: float | None = None

    @property
    def total(self) -> int:
        matches = _COUNTER.findall(self.output.read_bytes()[-200:])
        count = int(matches[-1]) if matches else 0
        if count != self._count:
            now = time.monotonic()
            self.first_at = self.first_at or now
            self.last_at = now
            self._count = count
        return count

    @property
    def unique(self) -> int:
        return self.total


class PostfixSmtpSink:
    """Postfix's smtp-sink on a free loopback port, its counter read from its output."""

    def __init__(self) -> None:
        if not SMTP_SINK.exists():
            raise SystemExit(f"{SMTP_SINK} is missing: DEBIAN_FRONTEND=noninteractive apt-get install postfix")
        self.port = _free_port()
        self.output = Path(tempfile.mkstemp(prefix="smtp-sink-", suffix=".out")[1])
        self.tally = _Counted(self.output)
        self.process: subprocess.Popen | None = None

    def start(self) -> PostfixSmtpSink:
        # -c: a running message counter on stdout; -u: the user it drops to (it starts as root here).
        command = [str(SMTP_SINK), "-c", "-u", "postfix", f"127.0.0.1:{self.port}", "256"]
        self.process = subprocess.Popen(command, stdout=self.output.open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise SystemExit("smtp-sink did not start listening")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

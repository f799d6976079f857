"""A private Dovecot (IMAP and POP3) on loopback for the bounce mailbox tests.

Debian's dovecot-imapd and dovecot-pop3d, configured under a temporary
directory: its own config, sockets, logs and Maildir, users from a
passwd-file, plain-text logins (loopback only, no TLS), on free ports.
Nothing of the system's Dovecot is used or touched. Tests put mail in the
mailbox with IMAP APPEND, as a delivery agent would.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"


def dovecot_missing() -> str:
    """Return why Dovecot cannot run here, or ""."""
    if not os.path.exists(DOVECOT):
        return "dovecot is not installed (apt-get install dovecot-imapd dovecot-pop3d)"
    if not Path("/usr/lib/dovecot/imap").exists() or not Path("/usr/lib/dovecot/pop3").exists():
        return "dovecot-imapd or dovecot-pop3d is not installed"
    if os.geteuid() != 0:
        return "the private Dovecot is started as root (it drops to the mail user)"
    return ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Dovecot:
    """A running private Dovecot with one mail user."""

    def __init__(self, *, user: str = "bounces", password: str = "bounce-box-secret") -> None:
        self.user, self.password = user, password
        self.dir = Path(tempfile.mkdtemp(prefix="dwvlist-dovecot-"))
        self.dir.chmod(0o755)
        self.imap_port, self.pop3_port = _free_port(), _free_port()
        mail = pwd.getpwnam("mail")
        home = self.dir / "home" / user
        home.mkdir(parents=True)
        for path in (self.dir / "home", home):
            os.chown(path, mail.pw_uid, mail.pw_gid)
        (self.dir / "users").write_text(
            f"{user}:{{PLAIN}}{password}:{mail.pw_uid}:{mail.pw_gid}::{home}::\n", encoding="utf-8"
        )
        self.config = self.dir / "dovecot.conf"
        self.config.write_text(
            f"""
base_dir = {self.dir}/run
state_dir = {self.dir}/state
instance_name = dwvlist-test-{os.getpid()}-{self.imap_port}
log_path = {self.dir}/dovecot.log
info_log_path = {self.dir}/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = {mail.pw_uid}
mail_location = maildir:~/Maildir
pop3_uidl_format = %08Xu%08Xv
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.dir}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {self.dir}/users
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {self.pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
namespace inbox {{
  inbox = yes
  mailbox Processed {{
    auto = create
  }}
}}
""",
            encoding="utf-8",
        )

    def start(self) -> Dovecot:
        # It forks into the background: no pipes for it to keep open.
        with open(self.dir / "start.log", "wb") as log:
            subprocess.run([DOVECOT, "-c", str(self.config)], check=True, stdout=log, stderr=log, timeout=30)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with (
                    socket.create_connection(("127.0.0.1", self.imap_port), timeout=1),
                    socket.create_connection(("127.0.0.1", self.pop3_port), timeout=1),
                ):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"dovecot did not start:\n{self.log()[-3000:]}")

    def log(self) -> str:
        path = self.dir / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        pid_file = self.dir / "run" / "master.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().strip())
            try:
                os.kill(pid, signal.SIGTERM)
                for _ in range(100):
                    os.kill(pid, 0)
                    time.sleep(0.05)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, scheme: str, folder: str = "") -> str:
        port = self.imap_port if scheme.startswith("imap") else self.pop3_port
        suffix = f"/{folder}" if folder else ""
        return f"{scheme}://{self.user}:{self.password}@127.0.0.1:{port}{suffix}"

    def client(self):
        """Return a logged-in IMAP client on the inbox."""
        from imapclient import IMAPClient

        client = IMAPClient("127.0.0.1", port=self.imap_port, ssl=False, timeout=30)
        client.login(self.user, self.password)
        return client

    def deliver(self, *messages: bytes, folder: str = "INBOX") -> None:
        """Put the messages in the mailbox, as a delivery agent would."""
        with self.client() as client:
            for raw in messages:
                client.append(folder, raw)

    def count(self, folder: str = "INBOX") -> int:
        with self.client() as client:
            return client.select_folder(folder, readonly=True)[b"EXISTS"]

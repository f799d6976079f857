"""Run the whole stack in the foreground: Redis if needed, web, worker, beat.

Ctrl-C (or SIGTERM) stops every child and its children; nothing is left
behind. If any child dies, the rest are stopped too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from dwvlist import demo
from dwvlist.embedded_redis import redis_ensure


class Command(BaseCommand):
    help = "Start the web server, a Celery worker and beat together (and an embedded Redis if needed)."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--concurrency", type=int, default=2)

    def handle(self, *args, addr: str, port: int, concurrency: int, **options):
        self.children: list[tuple[str, subprocess.Popen]] = []
        var = Path(settings.VAR_DIR)
        redis_url, embedded = redis_ensure(workdir=var / "redis", fallback=True)
        env = {**os.environ, "REDIS_URL": redis_url}
        python = sys.executable
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        commands = {
            "web": [python, manage, "runserver", "--noreload", f"{addr}:{port}"],
            "worker": [
                python,
                "-m",
                "celery",
                "-A",
                "dwvlist",
                "worker",
                "-Q",
                "default,bulk",
                "-c",
                str(concurrency),
                "-l",
                "info",
                "-n",
                "worker@%h",
            ],
            "beat": [
                python,
                "-m",
                "celery",
                "-A",
                "dwvlist",
                "beat",
                "-l",
                "info",
                "-s",
                str(var / "celerybeat-schedule"),
            ],
        }
        stopping = False

        def stop(signum=None, frame=None):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exit_code = 0
        try:
            for name, command in commands.items():
                self.children.append(
                    (name, subprocess.Popen(command, env=env, cwd=settings.BASE_DIR, start_new_session=True))
                )
            source = "embedded, files under var/redis" if embedded else "from REDIS_URL"
            self.stdout.write(
                f"\n  dwvlist is running at http://{addr}:{port}/\n"
                f"  editor area: http://{addr}:{port}/editor/   admin: http://{addr}:{port}/admin/\n"
                f"  Redis: {redis_url} ({source})\n"
                + "".join(f"  login: {u} / {login['password']}\n" for u, login in demo.LOGINS.items())
                + "  Ctrl-C stops everything.\n"
            )
            while not stopping:
                for name, child in self.children:
                    if child.poll() is not None:
                        self.stderr.write(f"{name} exited with code {child.returncode}; stopping the rest")
                        exit_code = 1
                        stopping = True
                time.sleep(0.5)
        finally:
            self._stop_children()
            if embedded:
                embedded.stop()
        if exit_code:
            sys.exit(exit_code)

    def _stop_children(self) -> None:
        for _, child in self.children:
            self._signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for _, child in self.children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for _, child in self.children:
            # The group may hold grandchildren (pool workers) even after the
            # leader is gone.
            self._signal_group(child, signal.SIGKILL)
            if child.poll() is None:
                child.wait()

    @staticmethod
    def _signal_group(child: subprocess.Popen, signum: int) -> None:
        try:
            os.killpg(child.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

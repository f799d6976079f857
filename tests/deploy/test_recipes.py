"""The deployment recipes run: each command that deploy/ declares, read from its file, serves /healthz.

For systemd, each unit's ExecStart= with its Environment= and an
EnvironmentFile= written from .env.example, as a sysadmin following the
README would; for compose, each app service's command (or the Dockerfile's
CMD when it has none) with the image's ENV, the env_file and the service's
environment. Only what cannot be the same here is replaced: the code's path
(/opt/dwvlist, /app), VAR_DIR, the listening port (an ephemeral one on
127.0.0.1) and the addresses of PostgreSQL and Redis (this session's).
There is no container daemon on this machine: the files' commands are what
can be tested.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import psycopg
import pytest
import redis
from django.conf import settings
from django.db import connection
from dotenv import dotenv_values

from tests.deploy.recipes import DEPLOY, ROOT, Recipe, compose_read, compose_recipe, image_config, unit_recipe

pytestmark = [pytest.mark.worker, pytest.mark.django_db]

UNITS = ["dwvlist-web.service", "dwvlist-worker.service", "dwvlist-beat.service"]


@pytest.fixture
def fresh_database():
    """Return the URL of an empty database of this session's kind, dropped afterwards."""
    conf = connection.settings_dict
    if connection.vendor == "sqlite":
        path = Path(conf["NAME"]).with_name(f"recipes-{secrets.token_hex(4)}.sqlite3")
        yield f"sqlite:///{path}"
        path.unlink(missing_ok=True)
        return
    name = f"{conf['NAME']}_recipes"
    admin = psycopg.connect(
        host=conf.get("HOST") or "127.0.0.1",
        port=conf.get("PORT") or 5432,
        user=conf.get("USER") or None,
        password=conf.get("PASSWORD") or None,
        dbname="postgres",
        autocommit=True,
    )
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{name}"')
    user = conf.get("USER") or ""
    auth = f"{user}:{conf['PASSWORD']}@" if conf.get("PASSWORD") else (f"{user}@" if user else "")
    yield f"postgres://{auth}{conf.get('HOST') or '127.0.0.1'}:{conf.get('PORT') or 5432}/{name}"
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture
def site_env_file(tmp_path, fresh_database):
    """Write the site's env file as the README says: .env.example, with this machine's services filled in."""
    text = (ROOT / ".env.example").read_text()
    replacements = {
        "SECRET_KEY": secrets.token_urlsafe(64),
        "DATABASE_URL": fresh_database,
        "REDIS_URL": settings.REDIS_URL,
        "VAR_DIR": str(tmp_path / "var"),
        # Nothing is mailed here; the transport only has to load.
        "EMAIL_TRANSPORT": "console",
        "WEB_CONCURRENCY": "1",
        "WORKER_CONCURRENCY": "1",
        "POSTGRES_PASSWORD": "not-used-here",
    }
    lines = [line for line in text.splitlines() if line.split("=", 1)[0] not in replacements]
    lines += [f"{name}={value}" for name, value in replacements.items()]
    path = tmp_path / "dwvlist.env"
    path.write_text("\n".join(lines) + "\n")
    (tmp_path / "var").mkdir()
    return path


def _base_env() -> dict[str, str]:
    # What a service manager starts a process with: almost nothing.
    return {"LANG": "C.UTF-8", "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(ROOT)}


class Running:
    """The processes of one recipe run, stopped together."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, recipe: Recipe) -> subprocess.Popen:
        assert "DJANGO_SETTINGS_MODULE" not in recipe.env  # the entry points choose it
        log = open(self.log_dir / f"{recipe.name}.log", "wb")  # noqa: SIM115 (the child holds it)
        process = subprocess.Popen(
            recipe.argv,
            cwd=recipe.cwd,
            env=recipe.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.processes[recipe.name] = process
        return process

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{self.log(name)[-3000:]}" for name in self.processes)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def _listening_port(running: Running, name: str, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", running.log(name))
        if found:
            return int(found.group(1))
        assert running.processes[name].poll() is None, running.logs()
        time.sleep(0.2)
    raise AssertionError(f"{name} did not listen in {timeout}s:\n{running.logs()}")


def _healthy(running: Running, probe: list[str], env: dict[str, str], beat_pid: int, timeout: float = 90) -> dict:
    """Run the health probe until /healthz says 200 with a worker and the beat that was started; return its body."""
    deadline = time.monotonic() + timeout
    answer = None
    while time.monotonic() < deadline:
        for name, process in running.processes.items():
            assert process.poll() is None, f"{name} exited\n{running.logs()}"
        answer = subprocess.run(probe, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
        if answer.returncode == 0:
            body = json.loads(answer.stdout)
            if f"{socket.gethostname()}:{beat_pid}" in body.get("beat", {}).get("seen", {}):
                return body
        time.sleep(0.5)
    raise AssertionError(f"not healthy in {timeout}s: {answer and answer.stderr}\n{running.logs()}")


def _forget_earlier_processes() -> None:
    # A worker from an earlier test of this host has the same name; start from none.
    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter("dwvlist:worker:*"):
        client.delete(key)


def test_systemd_units_declare_a_hardened_service_user_and_verify(tmp_path):
    for unit in UNITS:
        recipe = unit_recipe(DEPLOY / "systemd" / unit, env_file=tmp_path / "x.env", var_dir=tmp_path, base_env={})
        service = recipe.settings
        assert service["User"] == ["dwvlist"] and service["Group"] == ["dwvlist"]
        for key, value in {
            "NoNewPrivileges": "yes",
            "ProtectSystem": "strict",
            "ProtectHome": "yes",
            "PrivateTmp": "yes",
            "PrivateDevices": "yes",
            "RestrictSUIDSGID": "yes",
            "CapabilityBoundingSet": "",
        }.items():
            assert service.get(key) == [value], f"{unit}: {key}"
        assert "VAR_DIR=/var/lib/dwvlist" in service["Environment"]
        assert service["ReadWritePaths"] == ["/var/lib/dwvlist"]
        assert service["EnvironmentFile"] == ["/etc/dwvlist/dwvlist.env"]
    verifier = shutil.which("systemd-analyze")
    if verifier is None:
        pytest.skip("systemd-analyze is not installed: the units' syntax was not verified")
    # Verify copies whose paths point at this tree, so the executables exist.
    for unit in UNITS:
        text = (DEPLOY / "systemd" / unit).read_text().replace("/opt/dwvlist", str(ROOT))
        (tmp_path / unit).write_text(text)
    result = subprocess.run(
        [verifier, "verify", "--man=no", *[str(tmp_path / unit) for unit in UNITS]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_systemd_units_commands_serve_healthz_with_worker_and_beat(tmp_path, site_env_file, fresh_database):
    var_dir = tmp_path / "var"
    recipes = {
        unit: unit_recipe(DEPLOY / "systemd" / unit, env_file=site_env_file, var_dir=var_dir, base_env=_base_env())
        for unit in UNITS
    }
    web = recipes["dwvlist-web.service"]
    assert web.env["GUNICORN_BIND"] == "127.0.0.1:8000"  # loopback, behind nginx
    web.env["GUNICORN_BIND"] = "127.0.0.1:0"
    assert "--concurrency" in recipes["dwvlist-worker.service"].argv
    assert (
        recipes["dwvlist-worker.service"].argv[recipes["dwvlist-worker.service"].argv.index("--concurrency") + 1] == "1"
    )

    # The README's first step: migrate, as the service user would, with the site's environment.
    migrate = subprocess.run(
        [str(ROOT / ".venv/bin/python"), "manage.py", "migrate", "--noinput"],
        cwd=web.cwd,
        env=web.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert migrate.returncode == 0, migrate.stderr
    _forget_earlier_processes()
    running = Running(tmp_path)
    try:
        for recipe in recipes.values():
            running.start(recipe)
        port = _listening_port(running, "dwvlist-web")
        probe_env = {**web.env, "GUNICORN_BIND": f"127.0.0.1:{port}"}
        body = _healthy(
            running,
            [str(ROOT / ".venv/bin/python"), "deploy/healthcheck.py"],
            probe_env,
            beat_pid=running.processes["dwvlist-beat"].pid,
        )
        assert body["database"] == {"status": "ok", "vendor": connection.vendor}
        assert f"celery@{socket.gethostname()}" in body["workers"]["seen"]
        # Beat keeps its schedule in VAR_DIR, the one directory the units let it write.
        assert (var_dir / "celerybeat-schedule").exists() or list(var_dir.glob("celerybeat-schedule*"))
    finally:
        running.stop()


def test_compose_services_commands_serve_healthz_with_worker_and_beat(tmp_path, site_env_file, fresh_database):
    compose = compose_read(DEPLOY / "compose.yaml")
    image = image_config(DEPLOY / "Dockerfile")
    assert image["user"] == "dwvlist"
    assert image["cmd"][0] == "gunicorn"
    services = compose["services"]
    assert set(services) >= {"postgres", "redis", "migrate", "web", "worker", "beat"}
    assert services["web"]["healthcheck"]["test"][0] == "CMD"
    assert services["migrate"]["restart"] == "no"
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    # Its own database and Redis, by the services' names on compose's network.
    assert services["web"]["environment"]["DATABASE_URL"].startswith("postgres://dwvlist:")
    assert "@postgres:5432/" in services["web"]["environment"]["DATABASE_URL"]
    assert services["web"]["environment"]["REDIS_URL"] == "redis://redis:6379/0"

    variables = {k: v for k, v in dotenv_values(site_env_file).items() if v is not None}
    recipes = {
        name: compose_recipe(
            compose, name, image=image, env_file=site_env_file, variables=variables, base_env=_base_env()
        )
        for name in ("migrate", "web", "worker", "beat")
    }
    assert recipes["web"].env["GUNICORN_BIND"] == "0.0.0.0:8000"  # published on 127.0.0.1 by ports:
    for recipe in recipes.values():
        # This machine's services in place of compose's, its VAR_DIR in place of the volume.
        recipe.env.update(DATABASE_URL=fresh_database, REDIS_URL=settings.REDIS_URL, VAR_DIR=str(tmp_path / "var"))
    recipes["web"].env["GUNICORN_BIND"] = "127.0.0.1:0"

    migrate = subprocess.run(
        recipes["migrate"].argv,
        cwd=recipes["migrate"].cwd,
        env=recipes["migrate"].env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert migrate.returncode == 0, migrate.stderr
    assert "Applying subscriptions.0001_initial... OK" in migrate.stdout
    _forget_earlier_processes()
    running = Running(tmp_path)
    try:
        for name in ("web", "worker", "beat"):
            running.start(recipes[name])
        port = _listening_port(running, "web")
        probe = services["web"]["healthcheck"]["test"][1:]
        probe_env = {**recipes["web"].env, "GUNICORN_BIND": f"127.0.0.1:{port}"}
        body = _healthy(running, probe, probe_env, beat_pid=running.processes["beat"].pid)
        assert body["status"] == "ok"
        assert f"celery@{socket.gethostname()}" in body["workers"]["seen"]
    finally:
        running.stop()


def test_health_probe_fails_naming_the_port_when_nothing_answers():
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    # Nothing listens there now.
    result = subprocess.run(
        [str(ROOT / ".venv/bin/python"), "deploy/healthcheck.py"],
        cwd=ROOT,
        env={**_base_env(), "GUNICORN_BIND": f"127.0.0.1:{port}", "ALLOWED_HOSTS": "list.example.org"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert f"no answer on port {port}" in result.stderr

"""The env file: BASE_DIR/.env or ENV_FILE fills in what the real environment leaves unset."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from dotenv import dotenv_values

from dwvlist.envvars import env_file_load

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / ".env.example"


def _bare_env(**extra: str) -> dict[str, str]:
    """Return an environment holding none of the app's settings, only what a process needs to start."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    env.update(extra)
    return env


def test_env_example_reads_the_same_to_dotenv_and_to_a_posix_shell():
    parsed = dotenv_values(EXAMPLE, interpolate=False)
    assert parsed["DEFAULT_FROM_EMAIL"] == "Detroit Workers' Voice <list@example.org>"
    shell = subprocess.run(
        ["sh", "-c", 'set -a; . "$1"; env -0', "sh", str(EXAMPLE)],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        check=True,
    )
    assert shell.stderr == b""
    sourced = dict(item.split("=", 1) for item in shell.stdout.decode().split("\0") if "=" in item)
    assert {name: sourced.get(name) for name in parsed} == parsed
    assert len(parsed) >= 15


def test_env_example_as_the_env_file_passes_check_deploy(tmp_path):
    # As the file itself says: its SECRET_KEY placeholder is refused until replaced by a real one.
    env_file = tmp_path / ".env"
    key = secrets.token_urlsafe(64)
    env_file.write_text(EXAMPLE.read_text().replace("SECRET_KEY='replace-me'", f"SECRET_KEY='{key}'"))
    assert key in env_file.read_text()
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=_bare_env(ENV_FILE=str(env_file)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def _settings_seen(entry: str, env: dict[str, str]) -> list[str]:
    code = {
        "manage": "import runpy, sys; sys.argv = ['manage.py', 'shell', '-c', PRINT]; "
        "runpy.run_path('manage.py', run_name='__main__')",
        "wsgi": "import dwvlist.wsgi; exec(PRINT)",
        "celery": "import dwvlist.celery, django; django.setup(); exec(PRINT)",
    }[entry]
    printer = "from django.conf import settings; print(settings.SEND_BATCH_SIZE, settings.DEFAULT_FROM_EMAIL, sep='|')"
    result = subprocess.run(
        [sys.executable, "-c", f"PRINT = {printer!r}\n{code}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1].split("|")


@pytest.mark.parametrize("entry", ["manage", "wsgi", "celery"])
def test_every_entry_point_reads_the_env_file_and_the_environment_wins(entry, tmp_path):
    env_file = tmp_path / "dwvlist.env"
    env_file.write_text(
        "# the editors' file\nDEBUG=1\nexport SEND_BATCH_SIZE=123\n"
        'DEFAULT_FROM_EMAIL="Voix ouvrière <liste@exemple.org>"\nREDIS_URL=redis://127.0.0.1:6379/5\n',
        encoding="utf-8",
    )
    env = _bare_env(ENV_FILE=str(env_file), VAR_DIR=str(tmp_path))
    assert _settings_seen(entry, env) == ["123", "Voix ouvrière <liste@exemple.org>"]
    env["SEND_BATCH_SIZE"] = "77"
    assert _settings_seen(entry, env) == ["77", "Voix ouvrière <liste@exemple.org>"]


def test_env_file_beside_manage_py_is_read_when_env_file_is_unset(tmp_path):
    (tmp_path / ".env").write_text("SEND_RATE_LIMIT=5\nSECRET_KEY='a$b\"c'\n", encoding="utf-8")
    environ = {"SECRET_KEY": "from the environment"}
    assert env_file_load(base_dir=tmp_path, environ=environ) == tmp_path / ".env"
    assert environ == {"SECRET_KEY": "from the environment", "SEND_RATE_LIMIT": "5"}
    environ = {}
    env_file_load(base_dir=tmp_path, environ=environ)
    assert environ["SECRET_KEY"] == 'a$b"c'  # taken literally, no $ expansion


def test_no_env_file_and_an_empty_env_file_name_read_nothing(tmp_path):
    assert env_file_load(base_dir=tmp_path, environ={}) is None
    (tmp_path / ".env").write_text("DEBUG=1\n", encoding="utf-8")
    environ = {"ENV_FILE": ""}
    assert env_file_load(base_dir=tmp_path, environ=environ) is None
    assert environ == {"ENV_FILE": ""}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("DEBUG=1\nthis is not a setting\n", "line 2: expected NAME=value, got 'this is not a setting'"),
        ('SECRET_KEY="never closed\nDEBUG=1\n', "line 1: expected NAME=value"),
        (b"DEBUG=1\nNAME=\xff\xfe\n", "could not be read"),
    ],
)
def test_a_malformed_env_file_stops_start_up_naming_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.env"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    environ = {"ENV_FILE": str(path)}
    with pytest.raises(ImproperlyConfigured, match=r"bad\.env") as caught:
        env_file_load(base_dir=tmp_path, environ=environ)
    assert message in str(caught.value)
    assert environ == {"ENV_FILE": str(path)}  # nothing half-read


def test_a_missing_env_file_stops_start_up(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=_bare_env(ENV_FILE=str(tmp_path / "nowhere.env"), DEBUG="1"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ENV_FILE" in result.stderr and "nowhere.env" in result.stderr

"""A SECRET_KEY anyone could know stops the app with DEBUG off: at start, and in `check --deploy`."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from dwvlist.secretkeys import DEVELOPMENT_KEY
from tests.conftest import ROOT

PLACEHOLDER_KEYS = [
    DEVELOPMENT_KEY,  # the key settings.py uses with DEBUG on
    "replace-me",  # .env.example
    "change-me-to-a-long-random-string-of-at-least-fifty-characters",  # .env.example until now
    "django-insecure-" + secrets.token_urlsafe(40),  # startproject's
    secrets.token_urlsafe(30),  # too short
    "ab" * 40,  # long but of low variety
    "0123456789" * 6,  # enough different characters, but a pattern repeated
]


def _run(code: list[str], **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "SECRET_KEY_FALLBACKS"}}
    return subprocess.run(code, cwd=ROOT, env={**environ, **env}, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("key", [*PLACEHOLDER_KEYS[:4], "ab" * 40])
def test_a_published_or_weak_key_is_refused_at_start_with_debug_off(key):
    # What gunicorn does first: load the WSGI application.
    started = _run([sys.executable, "-c", "import dwvlist.wsgi"], DEBUG="0", SECRET_KEY=key)
    assert started.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY" in started.stderr.splitlines()[-1]
    checked = _run([sys.executable, "manage.py", "check", "--deploy"], DEBUG="0", SECRET_KEY=key)
    assert checked.returncode != 0
    assert "SECRET_KEY" in checked.stderr


def test_a_published_fallback_key_is_refused_too():
    result = _run(
        [sys.executable, "manage.py", "check"],
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(64),
        SECRET_KEY_FALLBACKS=f"{secrets.token_urlsafe(64)},{DEVELOPMENT_KEY}",
    )
    assert result.returncode != 0
    assert "SECRET_KEY_FALLBACKS is unfit for production" in result.stderr


def test_a_random_key_with_random_fallbacks_starts():
    result = _run(
        [sys.executable, "manage.py", "check"],
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(64),
        SECRET_KEY_FALLBACKS=f"{secrets.token_urlsafe(64)}, {secrets.token_hex(32)}",
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize("key", PLACEHOLDER_KEYS)
def test_system_check_reports_a_weak_key_as_an_error_with_debug_off(settings, key):
    settings.DEBUG = False
    settings.SECRET_KEY = key
    with pytest.raises(SystemCheckError, match=r"dwvlist\.E001"):
        call_command("check")


def test_system_check_accepts_the_development_key_with_debug_on(settings):
    settings.DEBUG = True
    settings.SECRET_KEY = DEVELOPMENT_KEY
    settings.SECRET_KEY_FALLBACKS = []
    call_command("check")


def _env_example() -> dict[str, str]:
    """Return .env.example as sh reads it (`set -a; . ./.env.example`)."""
    shown = subprocess.run(
        ["sh", "-c", "set -a; . ./.env.example; env -0"],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout.decode()
    return dict(item.split("=", 1) for item in shown.split("\0") if "=" in item)


def test_env_example_reads_in_sh_and_refuses_to_start_until_the_key_is_replaced(tmp_path):
    values = _env_example()
    assert values["DEFAULT_FROM_EMAIL"] == "Detroit Workers' Voice <list@example.org>"
    assert values["TRUSTED_PROXIES"] == "127.0.0.1"
    environ = {k: v for k, v in os.environ.items() if k not in values and k not in {"DEBUG", "SECRET_KEY"}}
    settings_env = {**environ, **values, "VAR_DIR": str(tmp_path)}
    refused = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=settings_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode != 0 and "SECRET_KEY" in refused.stderr

    settings_env["SECRET_KEY"] = secrets.token_urlsafe(64)
    checked = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=settings_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stderr
    assert "no issues" in checked.stdout

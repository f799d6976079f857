import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from dwvlist.envvars import env_bool, env_choice, env_float, env_int, env_list, env_url

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("value", ["maybe", "2", "yess"])
def test_env_bool_refuses_unknown_spellings(value):
    with pytest.raises(ImproperlyConfigured, match="DEBUG"):
        env_bool("DEBUG", False, environ={"DEBUG": value})


def test_env_bool_accepts_usual_spellings():
    assert env_bool("X", False, environ={"X": "Yes"}) is True
    assert env_bool("X", True, environ={"X": "off"}) is False
    assert env_bool("X", True, environ={}) is True


@pytest.mark.parametrize(("value", "message"), [("ten", "whole number"), ("0", "at least 1"), ("5000", "at most")])
def test_env_int_refuses_junk_and_out_of_range(value, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        env_int("SEND_BATCH_SIZE", 500, minimum=1, maximum=1000, environ={"SEND_BATCH_SIZE": value})


@pytest.mark.parametrize("value", ["fast", "nan", "inf", "-1"])
def test_env_float_refuses_junk(value):
    with pytest.raises(ImproperlyConfigured, match="SEND_RATE_LIMIT"):
        env_float("SEND_RATE_LIMIT", 0.0, minimum=0.0, environ={"SEND_RATE_LIMIT": value})


@pytest.mark.parametrize("value", ["example.org", "ftp://example.org", "http//example.org"])
def test_env_url_refuses_relative_or_wrong_scheme(value):
    with pytest.raises(ImproperlyConfigured, match="SITE_URL"):
        env_url("SITE_URL", "http://x", schemes=("http", "https"), environ={"SITE_URL": value})


def test_env_choice_and_list():
    assert env_choice("T", "outbox", ["outbox", "smtp"], environ={"T": "SMTP"}) == "smtp"
    with pytest.raises(ImproperlyConfigured, match="one of outbox, smtp"):
        env_choice("T", "outbox", ["outbox", "smtp"], environ={"T": "pigeon"})
    assert env_list("H", ["a"], environ={"H": " x.org, ,y.org "}) == ["x.org", "y.org"]


def _django_check(env_overrides: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY"}}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", "check", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"DEBUG": "1", "SEND_RATE_LIMIT": "fast"}, "SEND_RATE_LIMIT"),
        ({"DEBUG": "1", "DATABASE_URL": "mysql://root@localhost/x"}, "DATABASE_URL"),
        ({"DEBUG": "1", "EMAIL_TRANSPORT": "pigeon"}, "EMAIL_TRANSPORT"),
        ({"DEBUG": "1", "SITE_URL": "example.org"}, "SITE_URL"),
        ({"DEBUG": "1", "REDIS_URL": "http://localhost"}, "REDIS_URL"),
        ({"DEBUG": "0"}, "SECRET_KEY"),
        ({"DEBUG": "0", "SECRET_KEY": "short"}, "SECRET_KEY"),
        ({"DEBUG": "1", "LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"DEBUG": "1", "LOG_PERSONAL_DATA": "perhaps"}, "LOG_PERSONAL_DATA"),
        ({"DEBUG": "1", "METRICS_ALLOWED_IPS": "10.0.0.0/8,not-an-address"}, "METRICS_ALLOWED_IPS"),
        ({"DEBUG": "1", "METRICS_TOKEN": "short"}, "METRICS_TOKEN"),
        ({"DEBUG": "1", "SENTRY_DSN": "sentry.example.org/1"}, "SENTRY_DSN"),
        ({"DEBUG": "1", "SENTRY_TRACES_SAMPLE_RATE": "2"}, "SENTRY_TRACES_SAMPLE_RATE"),
    ],
)
def test_start_up_stops_with_a_message_naming_the_bad_variable(overrides, named):
    result = _django_check(overrides)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert named in result.stderr.splitlines()[-1]


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = _django_check(
        {
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(64),
            "SITE_URL": "https://list.example.org",
            "ALLOWED_HOSTS": "list.example.org",
            "SECURE_SSL_REDIRECT": "1",
            "SECURE_HSTS_SECONDS": "31536000",
            "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
            "SECURE_HSTS_PRELOAD": "1",
            "EMAIL_TRANSPORT": "mailgun",
            "ANYMAIL_MAILGUN_API_KEY": "key-123",
            "ANYMAIL_WEBHOOK_SECRET": "hooks:s3cret",
            "VAR_DIR": str(tmp_path),
        },
        "--deploy",
        "--fail-level",
        "WARNING",
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_anymail_settings_come_from_anymail_variables(tmp_path):
    code = "from django.conf import settings; print(settings.EMAIL_BACKEND, sorted(settings.ANYMAIL.items()))"
    env = {
        **os.environ,
        "DEBUG": "1",
        "EMAIL_TRANSPORT": "postmark",
        "ANYMAIL_POSTMARK_SERVER_TOKEN": "tok",
        "DJANGO_SETTINGS_MODULE": "dwvlist.settings",
        "VAR_DIR": str(tmp_path),
    }
    out = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); " + code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "anymail.backends.postmark.EmailBackend" in out
    assert "('POSTMARK_SERVER_TOKEN', 'tok')" in out

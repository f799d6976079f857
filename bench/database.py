"""The PostgreSQL database a benchmark runs on: made empty, migrated, with Django set up on it.

Two kinds: a fixed one named by an environment variable, dropped and made
again on every run (database_fresh, then django_migrated), or a throw-away
one with a new name on a server, dropped afterwards (database_throwaway).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg


def _admin_url(url: str) -> str:
    return url.rsplit("/", 1)[0] + "/postgres"


def database_fresh(url: str) -> None:
    """Drop the database at the URL if it exists, and create it empty."""
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(_admin_url(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def django_migrated(*, database_url: str, env: dict[str, str] | None = None) -> None:
    """Point Django at the database (and the other settings in `env`), set it up and migrate; DEBUG on unless set."""
    os.environ.update({"DATABASE_URL": database_url, **(env or {})})
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dwvlist.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


@contextmanager
def database_throwaway(*, server: str, prefix: str, keep: bool = False) -> Iterator[str]:
    """Make a database with a new name on the server, migrated, with Django on it; drop it afterwards unless `keep`.

    Yields its URL.
    """
    url = f"{server.rstrip('/')}/{prefix}_{uuid.uuid4().hex[:8]}"
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(_admin_url(url), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        django_migrated(database_url=url)
        yield url
    finally:
        from django.db import connections

        connections.close_all()
        if not keep:
            with psycopg.connect(_admin_url(url), autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

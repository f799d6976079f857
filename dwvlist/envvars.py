"""Read typed settings from the environment, failing loudly on bad values.

Every helper raises ImproperlyConfigured naming the variable and what was
wrong with it, so a typo in a deployment stops the process at start-up
instead of surfacing as odd behaviour later.
"""

from __future__ import annotations

import io
import ipaddress
import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    environ = os.environ if environ is None else environ
    value = environ.get(name)
    return None if value is None else value.strip()


def env_str(name: str, default: str = "", *, environ: Mapping[str, str] | None = None) -> str:
    """Return the variable as a string, or the default when unset."""
    value = _raw(name, environ)
    return default if value is None else value


def env_bool(name: str, default: bool, *, environ: Mapping[str, str] | None = None) -> bool:
    """Return the variable as a boolean; only the usual spellings are accepted."""
    value = _raw(name, environ)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be one of 1/0, true/false, yes/no, on/off; got {value!r}")


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Return the variable as an integer within the given bounds."""
    value = _raw(name, environ)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number; got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}; got {number}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}; got {number}")
    return number


def env_float(
    name: str,
    default: float,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> float:
    """Return the variable as a number within the given bounds."""
    value = _raw(name, environ)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number; got {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ImproperlyConfigured(f"{name} must be a finite number; got {value!r}")
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}; got {number}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}; got {number}")
    return number


def env_list(name: str, default: list[str], *, environ: Mapping[str, str] | None = None) -> list[str]:
    """Return a comma-separated variable as a list of non-empty items."""
    value = _raw(name, environ)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: list[str], *, environ: Mapping[str, str] | None = None) -> str:
    """Return the variable if it is one of the choices (case-insensitive)."""
    value = _raw(name, environ)
    if value is None or value == "":
        return default
    lowered = value.lower()
    if lowered not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return lowered


def env_url(
    name: str,
    default: str,
    *,
    schemes: tuple[str, ...],
    allow_empty: bool = False,
    environ: Mapping[str, str] | None = None,
) -> str:
    """Return the variable if it is an absolute URL with one of the schemes (or empty, if allowed)."""
    value = _raw(name, environ)
    if value is None or value == "":
        value = default
    if allow_empty and value == "":
        return value
    parts = urlsplit(value)
    if parts.scheme not in schemes or not (parts.netloc or parts.path):
        raise ImproperlyConfigured(
            f"{name} must be an absolute URL starting with {' or '.join(s + '://' for s in schemes)}; got {value!r}"
        )
    return value


def env_file_load(*, base_dir: Path, environ: MutableMapping[str, str] | None = None) -> Path | None:
    """Read NAME=value lines from the env file into the environment, the real environment winning.

    The file is ENV_FILE when set (an empty ENV_FILE reads none), else
    base_dir/.env when it exists. Values are taken literally: no `$VAR`
    expansion, as systemd's EnvironmentFile= does not expand either. A line
    that is not NAME=value stops start-up naming the file and the line.
    Return the file read, or None.
    """
    from dotenv.parser import parse_stream

    environ = os.environ if environ is None else environ
    named = environ.get("ENV_FILE")
    if named is not None and not named.strip():
        return None
    path = Path(named.strip()) if named is not None else base_dir / ".env"
    if named is None and not path.exists():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImproperlyConfigured(f"ENV_FILE {str(path)!r} could not be read: {exc}") from None
    values = {}
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            line = binding.original.string.strip()[:80]
            raise ImproperlyConfigured(f"{path}, line {binding.original.line}: expected NAME=value, got {line!r}")
        if binding.key is not None and binding.value is not None:
            values[binding.key] = binding.value
    for name, value in values.items():
        environ.setdefault(name, value)
    return path


def env_networks(name: str, default: list[str], *, environ: Mapping[str, str] | None = None) -> list[str]:
    """Return a comma-separated list of IP addresses or networks (CIDR), each checked."""
    items = env_list(name, default, environ=environ)
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ImproperlyConfigured(
                f"{name} must list IP addresses or networks like 10.0.0.0/8; got {item!r}"
            ) from None
    return items

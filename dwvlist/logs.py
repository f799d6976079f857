"""Log lines an operator can read and a machine can parse.

One configuration (settings.LOGGING) for the web processes, the workers
and beat: every line carries its time in UTC, its level and logger, and
the context fields that place it (issue_id, batch, delivery_id, list,
provider, event_id, import_id, user), set for a block of code with
`log_context(...)` and kept in a context variable, so every line logged
inside the block, at any depth, carries them.

Readers' addresses never reach a log line unless LOG_PERSONAL_DATA is on:
code logs `log_address(email)` (a keyed hash, the same for the same
address, so lines about one reader can still be matched), and any address
left in a message, an extra field or a traceback is replaced by its hash
as the line is written.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonFormatter

CONTEXT_FIELDS = ("issue_id", "batch", "delivery_id", "list", "provider", "event_id", "import_id", "user")
_HASH_SALT = "dwvlist.logs.address"
# Fields whose values may hold an "@" without being anyone's address.
_NOT_ADDRESSES = frozenset({"message_id", "provider_message_id", "task", "task_id", "hostname", "logger"})
# A local part, "@", and a domain whose last label has letters (not an IP address).
_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@(?:[\w-]+\.)+[^\W\d_][\w-]*")
# Attributes every LogRecord has: anything else on a record is an extra field.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

_EMPTY: dict[str, Any] = {}  # the context outside any block; never changed
_context: ContextVar[dict[str, Any]] = ContextVar("dwvlist_log_context", default=_EMPTY)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add the fields to every line logged inside the block (None values are left out)."""
    token = _context.set({**_context.get(), **{key: value for key, value in fields.items() if value is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def log_context_add(**fields: Any) -> None:
    """Add the fields to the lines logged from here to the end of the innermost log_context block.

    Each Celery task and each web request runs in a block of its own, so
    the fields never outlive the task or request that set them; outside
    any block (a shell, a test calling the engine directly) they are dropped.
    """
    current = _context.get()
    if current is not _EMPTY:  # outside any block there is nothing they could be undone with
        current.update({key: value for key, value in fields.items() if value is not None})


_task_tokens: dict[str, Token] = {}


def log_context_task_start(task_id: str) -> None:
    """Give a Celery task an empty context of its own, whatever ran before it in this thread."""
    _task_tokens[task_id] = _context.set({})


def log_context_task_end(task_id: str) -> None:
    """Put back the context the task started in (an eager task in a request keeps the request's)."""
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        try:
            _context.reset(token)
        except ValueError:  # set in another context (a task that moved threads): start clean
            _context.set(_EMPTY)


def log_context_fields() -> dict[str, Any]:
    """Return the context fields in force here."""
    return dict(_context.get())


def _personal_data_allowed() -> bool:
    from django.conf import settings

    return bool(getattr(settings, "LOG_PERSONAL_DATA", False))


def log_address(email: str) -> str:
    """Return how an address appears in logs: a keyed hash, or the address itself with LOG_PERSONAL_DATA."""
    if _personal_data_allowed():
        return email
    from dwvlist.keyed_hmac import salted_hmac_digest

    return "addr:" + salted_hmac_digest(_HASH_SALT, email.strip().lower()).hex()[:16]


def _redact(text: str) -> str:
    if "@" not in text:
        return text
    return _ADDRESS.sub(lambda match: log_address(match.group(0)), text)


def redact_value(value: Any) -> Any:
    """Return the value with every address in its strings hashed, through dicts and lists (for error reports)."""
    if _personal_data_allowed():
        return value
    if isinstance(value, str):
        return _redact(value)
    if isinstance(value, dict):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(item) for item in value)
    return value


class ContextFilter(logging.Filter):
    """Put the context fields and the Celery task on each record, and hash any address left in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        if not hasattr(record, "task_id"):
            from celery._state import get_current_task

            task = get_current_task()
            if task is not None and task.request.id:
                record.task, record.task_id = task.name, task.request.id
        if not _personal_data_allowed():
            try:
                record.msg, record.args = _redact(record.getMessage()), None
            except Exception:  # noqa: S110 (a malformed call is logging's to report, when it formats)
                pass
            for key, value in vars(record).items():
                if key not in _RECORD_ATTRS and key not in _NOT_ADDRESSES and isinstance(value, str):
                    setattr(record, key, _redact(value))
        return True


def _utc(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonLineFormatter(JsonFormatter):
    """One JSON object per line: time (UTC), level, logger, message, then the context and extra fields."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            json_ensure_ascii=False,
            **kwargs,
        )

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        log_data["time"] = _utc(record)
        super().add_fields(log_data, record, message_dict)

    def formatException(self, ei) -> str:
        text = super().formatException(ei)
        return text if _personal_data_allowed() else _redact(text)


class TextLineFormatter(logging.Formatter):
    """`time level logger message key=value ...`, the time in UTC."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_utc(record)} {record.levelname} {record.name} {record.getMessage()}"
        extras = {key: value for key, value in vars(record).items() if key not in _RECORD_ATTRS}
        if extras:
            line += " " + " ".join(f"{key}={_text_value(value)}" for key, value in extras.items())
        if record.exc_info:
            record.exc_text = record.exc_text or self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + (record.exc_text if _personal_data_allowed() else _redact(record.exc_text))
        return line


def _text_value(value: Any) -> str:
    text = str(value)
    return repr(text) if not text or any(c.isspace() or c in "\"'=" for c in text) else text


def logging_config(*, log_format: str, level: str) -> dict:
    """Return the dictConfig for every process: one handler on the root logger, nothing printed twice."""
    formatter = {"()": f"{__name__}.{'JsonLineFormatter' if log_format == 'json' else 'TextLineFormatter'}"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": f"{__name__}.ContextFilter"}},
        "formatters": {"line": formatter},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "line",
                "filters": ["context"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        # Django's own defaults give these loggers handlers of their own as
        # well as passing lines up to the root: each line would print twice.
        "loggers": {
            "django": {"handlers": [], "level": level, "propagate": True},
            "django.server": {"handlers": [], "level": level, "propagate": True},
            # Celery's process pool logs here and turns propagation off.
            "multiprocessing": {"handlers": ["console"], "level": level, "propagate": False},
        },
    }

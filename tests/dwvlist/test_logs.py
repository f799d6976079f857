"""The log configuration: one JSON (or text) line per record, UTC times, context fields, no addresses."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import re

import pytest
from django.utils.log import configure_logging

from dwvlist.logs import log_address, log_context, log_context_add, logging_config


@pytest.fixture
def log_lines(settings):
    """Configure logging as Django does at start-up, writing to a buffer; return a reader of its lines."""
    stream = io.StringIO()

    def configure(log_format: str = "json", level: str = "INFO") -> None:
        config = logging_config(log_format=log_format, level=level)
        config["handlers"]["console"]["stream"] = stream
        configure_logging(settings.LOGGING_CONFIG, config)

    configure()
    yield lambda: stream.getvalue().splitlines(), configure
    logging.config.dictConfig(settings.LOGGING)


def _json(lines: list[str]) -> list[dict]:
    return [json.loads(line) for line in lines]


def test_a_json_line_has_utc_time_level_logger_message_and_extra_fields(log_lines, settings):
    read, _ = log_lines
    settings.TIME_ZONE = "America/Detroit"
    logging.getLogger("issues.delivery").warning("batch recorded", extra={"sent": 3, "seconds": 0.25})
    (line,) = _json(read())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    assert line["level"] == "WARNING"
    assert line["logger"] == "issues.delivery"
    assert line["message"] == "batch recorded"
    assert line["sent"] == 3
    assert line["seconds"] == 0.25


def test_context_fields_reach_every_line_inside_the_block_and_nest(log_lines):
    read, _ = log_lines
    log = logging.getLogger("issues.delivery")
    with log_context(issue_id=7, provider="mailgun"):
        log.info("started")
        with log_context(batch="abc123", delivery_id=None):
            log.info("inner")
        log.info("after inner")
    log.info("outside")
    started, inner, after, outside = _json(read())
    assert (started["issue_id"], started["provider"]) == (7, "mailgun")
    assert "batch" not in started
    assert (inner["issue_id"], inner["batch"]) == (7, "abc123")
    assert "delivery_id" not in inner  # None values are left out
    assert "batch" not in after and after["issue_id"] == 7
    assert "issue_id" not in outside


def test_fields_added_inside_a_block_end_with_it_and_are_dropped_outside_any(log_lines):
    read, _ = log_lines
    log = logging.getLogger("issues.delivery")
    log_context_add(batch="outside")  # no block: nothing to undo it with, so dropped
    log.info("first")
    with log_context(issue_id=3):
        with log_context():
            log_context_add(batch="b1", provider="smtp")
            log.info("inner")
        log.info("outer")
    first, inner, outer = _json(read())
    assert "batch" not in first
    assert (inner["issue_id"], inner["batch"], inner["provider"]) == (3, "b1", "smtp")
    assert "batch" not in outer and outer["issue_id"] == 3


def test_a_task_run_here_gives_back_the_context_it_found(log_lines):
    from dwvlist.celery import app
    from dwvlist.logs import log_context_fields

    app.loader.import_default_modules()
    with log_context(user="ada"):
        app.tasks["dwvlist.tasks.probe"].apply()
        assert log_context_fields() == {"user": "ada"}
    app.tasks["dwvlist.tasks.probe"].apply()
    log_context_add(batch="outside")
    assert log_context_fields() == {}


def test_celery_pool_lines_go_through_the_same_handler(log_lines):
    read, _ = log_lines
    import billiard.util

    billiard.util.get_logger().error("Process %r pid:%r exited with %r", "ForkPoolWorker-1", 42, "signal 15")
    (line,) = _json(read())
    assert line["logger"] == "multiprocessing" and line["level"] == "ERROR"


def test_django_lines_are_printed_once_even_in_debug(log_lines, settings):
    read, _ = log_lines
    settings.DEBUG = True  # Django's own console handler is on in DEBUG
    logging.getLogger("django.request").error("Internal Server Error: /x")
    logging.getLogger("django.server").info('"GET / HTTP/1.1" 200 10')
    lines = _json(read())
    assert [line["message"] for line in lines] == ["Internal Server Error: /x", '"GET / HTTP/1.1" 200 10']


def test_addresses_are_hashed_in_messages_extras_and_tracebacks(log_lines):
    read, _ = log_lines
    log = logging.getLogger("subscriptions.suppressions")
    address = "Réader.Ünï+tag@exämple.org"
    log.info("suppressed %s for a hard bounce", address, extra={"detail": f"550 <{address}> no such user"})
    try:
        raise ValueError(f"refused {address}")
    except ValueError:
        log.exception("failed")
    text = "\n".join(read())
    assert "exämple" not in text.lower()
    first, second = _json(read())
    assert first["message"] == f"suppressed {log_address(address)} for a hard bounce"
    assert log_address(address).startswith("addr:")
    assert log_address(address) == log_address(address.upper())  # the same reader, the same hash
    assert log_address(address) in first["detail"]
    assert log_address(address) in second["exc_info"]


def test_a_message_id_field_is_kept_as_it_is(log_lines):
    read, _ = log_lines
    logging.getLogger("issues.feedback").info("event", extra={"message_id": "<2026.abc@lists.example.org>"})
    (line,) = _json(read())
    assert line["message_id"] == "<2026.abc@lists.example.org>"


def test_log_personal_data_lets_addresses_through(log_lines, settings):
    read, _ = log_lines
    settings.LOG_PERSONAL_DATA = True
    logging.getLogger("subscriptions.suppressions").info("suppressed %s", "ada@example.org")
    (line,) = _json(read())
    assert line["message"] == "suppressed ada@example.org"
    assert log_address("ada@example.org") == "ada@example.org"


def test_ip_addresses_and_credentials_in_urls_are_not_taken_for_addresses(log_lines):
    read, _ = log_lines
    logging.getLogger("celery").info("Connected to redis://:**@127.0.0.1:6379/6")
    (line,) = _json(read())
    assert line["message"] == "Connected to redis://:**@127.0.0.1:6379/6"


def test_text_format_is_one_readable_line_with_the_fields(log_lines):
    read, configure = log_lines
    configure("text")
    with log_context(issue_id=9, list="dwv"):
        logging.getLogger("issues.tasks").info("issue finished", extra={"sent": 10, "reason": "two words"})
    (line,) = read()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO issues.tasks issue finished "
        r"sent=10 reason='two words' issue_id=9 list=dwv",
        line,
    )


def test_the_level_setting_drops_lower_lines(log_lines):
    read, configure = log_lines
    configure("json", "WARNING")
    logging.getLogger("issues").info("quiet")
    logging.getLogger("issues").error("loud")
    assert [line["message"] for line in _json(read())] == ["loud"]

"""Fixtures shared by the issue tests."""

from __future__ import annotations

import pytest

from tests.fakes.sinks import EspSink


@pytest.fixture(scope="module")
def _running_sink():
    """One loopback provider API per test module (stopping one waits out serve_forever's half-second poll)."""
    esp = EspSink().start()
    yield esp
    esp.stop()

"""Error reports to Sentry, only when SENTRY_DSN is set."""

from __future__ import annotations

from typing import Any


def _scrub(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    """Leave readers' addresses out of a report, as the logs do (unless LOG_PERSONAL_DATA)."""
    from dwvlist.logs import redact_value

    return redact_value(event)


def sentry_init(*, dsn: str, environment: str, traces_sample_rate: float) -> None:
    """Start sending errors from web requests and Celery tasks to Sentry; no personal data is sent."""
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        traces_sample_rate=traces_sample_rate,
        send_default_pii=False,
        integrations=[DjangoIntegration(), CeleryIntegration(monitor_beat_tasks=False)],
        before_send=_scrub,
    )

"""What the engine tells an operator: a log line per batch, per deferral and per finished issue,
and the counters behind /metrics. Each is one call from the engine, so the engine reads as before.
"""

from __future__ import annotations

import logging

import redis

from dwvlist.logs import log_context_fields
from dwvlist.metrics import metric_add, metric_observe
from dwvlist.redis import CREDENTIALS_REFUSED, redis_client

log = logging.getLogger("issues.delivery")

OUTCOMES = ("sent", "failed", "deferred", "skipped")


def batch_report(*, result, seconds: float) -> None:
    """Log a batch that claimed readers, with what became of them and how long it took; count it."""
    if not result.claimed:
        return
    figures = {outcome: getattr(result, outcome) for outcome in OUTCOMES}
    log.info(
        "batch recorded: %d claimed, %d sent, %d failed, %d deferred, %d skipped in %.2f s",
        result.claimed,
        *figures.values(),
        seconds,
        extra={"claimed": result.claimed, **figures, "seconds": round(seconds, 3)},
    )
    metric_add("dwvlist_batches", provider=result.provider)
    for outcome, count in figures.items():
        if count:
            metric_add("dwvlist_messages", count, provider=result.provider, outcome=outcome)
    metric_observe("dwvlist_batch_duration_seconds", seconds, provider=result.provider)


def _first_in_a_minute(key: str) -> bool:
    """Return True for the first caller in a minute across every worker (True if Redis cannot say)."""
    try:
        return bool(redis_client().set(key, "1", nx=True, ex=60))
    except redis.RedisError:
        return True


def batch_deferred_report(*, exc, readers: int) -> None:
    """Log a batch the provider did not take: the provider's words, or refused credentials once a minute."""
    provider = log_context_fields().get("provider", "")
    if exc.credentials_refused:
        metric_add("dwvlist_credentials_refused", provider=provider)
        # Every batch is refused alike until someone fixes the settings: one
        # line a minute says so without burying everything else.
        if _first_in_a_minute(CREDENTIALS_REFUSED):
            log.error(
                "the provider refused our credentials; batches are retried until the settings are fixed: %s",
                exc.reason,
                extra={"readers": readers, "reason": exc.reason},
            )
        return
    log.warning("batch deferred: %s", exc.reason, extra={"readers": readers, "reason": exc.reason})


def provider_pause_report(*, seconds: float) -> None:
    """Log that a provider's 429 made every worker wait."""
    metric_add("dwvlist_provider_pauses", provider=log_context_fields().get("provider", ""))
    log.warning(
        "the provider asked us to slow down (429): every worker pauses %.1f s", seconds, extra={"pause": seconds}
    )


def issue_finished_report(*, issue_id: int) -> None:
    """Log an issue whose every reader has an outcome, with its figures from the ledger."""
    from issues.selectors import ledger_counts, ledger_summary

    summary = ledger_summary(ledger_counts(issue_ids=[issue_id])[issue_id])
    log.info(
        "issue finished: %d of %d sent, %d failed, %d skipped",
        summary["sent"],
        summary["total"],
        summary["failed"],
        summary["skipped"],
        extra={
            "issue_id": issue_id,
            **{key: value for key, value in summary.items() if key != "total"},
            "recipients": summary["total"],
        },
    )

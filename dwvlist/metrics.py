"""Figures for Prometheus, read from Redis and the database when /metrics is scraped.

Nothing is counted in a process's memory: a web process or a worker that
counted in memory would export its own share only, and lose it when it
restarts. Instead:

- gauges (deliveries by status, queue depth, workers alive, suppressions,
  imports, unapplied webhook events) are read from the ledger, the other
  tables and Redis by collectors at scrape time, so any web process
  answers with the same, whole figures;
- counters and summaries that code paths add to (batches, messages by
  outcome, batch seconds, webhook events and their lag, credentials
  refused) are kept in one Redis hash that every worker on every machine
  adds to with HINCRBYFLOAT, and exported from there.

A Redis that loses its data restarts the counters at zero, which
Prometheus's rate() and increase() treat as a counter reset.
"""

from __future__ import annotations

import contextvars
import hmac
import ipaddress
import json
import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import redis
from django.conf import settings
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily

from dwvlist.redis import FEEDBACK_PENDING, METRICS, redis_client

log = logging.getLogger(__name__)

# Kombu's Redis transport keeps a queue's messages of priority p in the list
# "<queue>\x06\x16<p>" (the plain name for priority 0); delivered but not yet
# acknowledged messages (including those a worker holds for a countdown) in
# the "unacked" hash.
_PRIORITY_SEPARATOR = "\x06\x16"
_PRIORITY_STEPS = (0, 3, 6, 9)
_UNACKED_KEY = "unacked"

# name: (help, label names). Every counter and summary a code path adds to.
COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "dwvlist_batches": ("Sending batches recorded.", ("provider",)),
    "dwvlist_messages": ("Readers' outcomes recorded by sending batches.", ("provider", "outcome")),
    "dwvlist_provider_pauses": ("Pauses asked for by a provider (429).", ("provider",)),
    "dwvlist_credentials_refused": ("Batches refused because the provider refused our credentials.", ("provider",)),
    "dwvlist_webhook_requests": ("Provider webhook requests answered.", ("provider",)),
    "dwvlist_webhook_events": ("Provider events received, by type.", ("provider", "event_type")),
    "dwvlist_suppressions_added": ("Addresses added to the suppression list.", ("reason",)),
    "dwvlist_import_rows": ("CSV rows handled by imports.", ()),
}
SUMMARIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "dwvlist_batch_duration_seconds": ("Seconds a sending batch took, claim to record.", ("provider",)),
    "dwvlist_webhook_event_lag_seconds": ("Seconds from an event at the provider to its receipt here.", ("provider",)),
    "dwvlist_webhook_request_duration_seconds": ("Seconds a webhook request took.", ("provider",)),
}


def _field(name: str, labels: dict[str, object]) -> str:
    return json.dumps([name, sorted((key, str(value)) for key, value in labels.items())])


# Updates held back by metrics_deferred(), as (field, amount).
_deferred: contextvars.ContextVar[list[tuple[str, float]] | None] = contextvars.ContextVar(
    "metrics_deferred", default=None
)


def _send(updates: list[tuple[str, float]]) -> None:
    try:
        pipe = redis_client().pipeline(transaction=False)
        for field, amount in updates:
            pipe.hincrbyfloat(METRICS, field, amount)
        pipe.execute()
    except redis.RedisError:
        pass  # a figure is not worth failing a batch for


def _record(updates: list[tuple[str, float]]) -> None:
    held = _deferred.get()
    if held is None:
        _send(updates)
    else:
        held.extend(updates)


@contextmanager
def metrics_deferred() -> Iterator[None]:
    """Hold back the block's metric updates and send them in one round trip at its end (a webhook request's)."""
    if _deferred.get() is not None:  # inside another: its end sends them
        yield
        return
    held: list[tuple[str, float]] = []
    token = _deferred.set(held)
    try:
        yield
    finally:
        _deferred.reset(token)
        if held:
            _send(held)


def metric_add(name: str, amount: float = 1.0, **labels: object) -> None:
    """Add to a counter of COUNTERS, shared by every process through Redis (never raises)."""
    if name not in COUNTERS:
        raise ValueError(f"unknown counter {name}")
    _record([(_field(name, labels), amount)])


def metric_observe(name: str, value: float, *, count: int = 1, **labels: object) -> None:
    """Record observations of a summary of SUMMARIES, through Redis (never raises).

    One observation, or `count` of them whose values add up to `value`.
    """
    if name not in SUMMARIES:
        raise ValueError(f"unknown summary {name}")
    _record([(_field(name + "_count", labels), count), (_field(name + "_sum", labels), value)])


class RedisCollector:
    """The shared counters, Celery's queues and the workers' heartbeats, as Redis holds them now."""

    def collect(self) -> Iterator[Metric]:
        client = redis_client()
        stored: dict[str, dict[tuple, float]] = {}
        for raw_field, raw_value in client.hgetall(METRICS).items():
            try:
                name, labels = json.loads(raw_field)
                stored.setdefault(name, {})[tuple(sorted(map(tuple, labels)))] = float(raw_value)
            except (ValueError, TypeError):
                continue  # not ours

        def values(labels: tuple, label_names: tuple[str, ...]) -> list[str] | None:
            named = dict(labels)
            return [named[name] for name in label_names] if set(named) == set(label_names) else None

        for name, (help_text, label_names) in COUNTERS.items():
            family = CounterMetricFamily(name, help_text, labels=label_names)
            for labels, value in sorted(stored.get(name, {}).items()):
                if (label_values := values(labels, label_names)) is not None:
                    family.add_metric(label_values, value)
            yield family
        for name, (help_text, label_names) in SUMMARIES.items():
            family = SummaryMetricFamily(name, help_text, labels=label_names)
            sums = stored.get(name + "_sum", {})
            for labels, count in sorted(stored.get(name + "_count", {}).items()):
                if (label_values := values(labels, label_names)) is not None:
                    family.add_metric(label_values, count_value=count, sum_value=sums.get(labels, 0.0))
            yield family
        yield from self._queues(client)
        yield from self._workers(client)

    def _queues(self, client: redis.Redis) -> Iterator[Metric]:
        from dwvlist.celery import app

        names = [queue.name for queue in app.conf.task_queues or ()] or [settings.CELERY_TASK_DEFAULT_QUEUE]
        pipe = client.pipeline(transaction=False)
        for name in names:
            for priority in _PRIORITY_STEPS:
                pipe.llen(f"{name}{_PRIORITY_SEPARATOR}{priority}" if priority else name)
        pipe.hlen(_UNACKED_KEY)
        pipe.xlen(FEEDBACK_PENDING)
        *lengths, waiting = pipe.execute()
        depth = GaugeMetricFamily(
            "dwvlist_celery_queue_length", "Tasks waiting in each Celery queue.", labels=("queue",)
        )
        for index, name in enumerate(names):
            step = len(_PRIORITY_STEPS)
            depth.add_metric([name], sum(lengths[index * step : (index + 1) * step]))
        yield depth
        yield GaugeMetricFamily(
            "dwvlist_celery_unacked",
            "Tasks handed to a worker and not yet finished (including those waiting for a countdown).",
            value=lengths[-1],
        )
        yield GaugeMetricFamily(
            "dwvlist_webhook_events_waiting",
            "Provider events accepted and waiting in Redis to be stored (issues.feedback.pending).",
            value=waiting,
        )

    def _workers(self, client: redis.Redis) -> Iterator[Metric]:
        from dwvlist import heartbeat

        seen = heartbeat.workers_seen()
        yield GaugeMetricFamily(
            "dwvlist_workers_alive", "Celery workers whose heartbeat is younger than a minute.", value=len(seen)
        )
        age = GaugeMetricFamily(
            "dwvlist_worker_heartbeat_age_seconds", "Seconds since each worker's last heartbeat.", labels=("worker",)
        )
        for hostname, seconds in sorted(seen.items()):
            age.add_metric([hostname], seconds)
        yield age


class MetricsRegistry:
    """The collectors behind one scrape; one that fails is reported as down, not the whole scrape."""

    def __init__(self, collectors: Iterable[object]) -> None:
        self.collectors = list(collectors)

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "dwvlist_metrics_collector_up", "1 if the collector answered this scrape.", labels=("collector",)
        )
        took = GaugeMetricFamily(
            "dwvlist_metrics_collector_seconds", "Seconds the collector took this scrape.", labels=("collector",)
        )
        for collector in self.collectors:
            name = type(collector).__name__
            started = time.monotonic()
            try:
                families = list(collector.collect())
            except Exception:
                log.exception("metrics collector %s failed", name)
                up.add_metric([name], 0)
            else:
                yield from families
                up.add_metric([name], 1)
            took.add_metric([name], round(time.monotonic() - started, 4))
        yield up
        yield took


def metrics_allowed(*, authorization: str, client_ip: str) -> bool:
    """Return whether a scrape may read /metrics: the METRICS_TOKEN as a Bearer token, or an allowed address."""
    token = settings.METRICS_TOKEN
    scheme, _, offered = authorization.partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(offered.strip().encode(), token.encode()):
        return True
    if not client_ip or not settings.METRICS_ALLOWED_IPS:
        return False
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(network, strict=False) for network in settings.METRICS_ALLOWED_IPS)

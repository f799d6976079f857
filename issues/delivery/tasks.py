"""Celery tasks of the delivery engine: thin wrappers that take ids and call the engine.

Their names are those they had before the engine had a package of its own,
so tasks already queued in a running deployment still run after an upgrade.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

log = logging.getLogger(__name__)


@shared_task(name="issues.tasks.send_batch", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def send_batch(issue_id: int) -> dict:
    """Send one batch of the issue, then queue the next one (a "lane").

    Late acknowledgement: a worker killed mid-batch leaves the message in the
    broker for another worker; the ledger's claim keeps that from sending twice.
    """
    from issues.delivery.batch import batch_send

    result = batch_send(issue_id=issue_id)
    if result.done:
        return result.__dict__
    if result.claimed:
        send_batch.delay(issue_id)
    elif result.wait:
        send_batch.apply_async((issue_id,), countdown=min(result.wait, 3600))
    return result.__dict__


@shared_task(name="issues.tasks.reap_stale_deliveries", ignore_result=True)
def reap_stale_deliveries() -> dict:
    """Return dead workers' claims to the queue and restart stalled issues (run by beat).

    The ledger, not the broker, is the truth: after a Redis restart the
    queued batch tasks are gone, but the pending rows are not.
    """
    from issues.delivery import claims, ledger

    reclaimed = claims.deliveries_reap()
    for issue_id in ledger.issues_needing_ledger():
        log.warning("issue %s stopped while its ledger was written; finishing the ledger", issue_id)
        ledger.ledger_mark_alive(issue_id=issue_id)  # one writer per reaper round
        complete_ledger.delay(issue_id)
    restarted = claims.issues_needing_lanes()
    for issue_id in restarted:
        log.warning("issue %s had work left and no live batch task; re-queueing", issue_id)
        for _ in range(settings.SEND_LANES):
            send_batch.delay(issue_id)
    return {"reclaimed": reclaimed, "restarted": restarted}


@shared_task(name="issues.tasks.complete_ledger", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def complete_ledger(issue_id: int) -> int:
    """Finish writing a sending issue's ledger (after a crash) and start its batch tasks."""
    from issues.delivery.ledger import ledger_complete
    from issues.models import Issue

    issue = Issue.objects.get(pk=issue_id)
    if issue.status != Issue.Status.SENDING or issue.ledger_written_at is not None:
        return 0
    return ledger_complete(issue=issue)


@shared_task(name="issues.tasks.send_test", ignore_result=True)
def send_test(issue_id: int, addresses: list[str]) -> int:
    """Mail a test copy of the issue, rendered as it stands now, to each address."""
    from issues.delivery.batch import test_copies_send
    from issues.models import Issue

    issue = Issue.objects.get(pk=issue_id)
    return test_copies_send(issue=issue, addresses=addresses)

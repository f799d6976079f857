"""Sending an issue: the snapshot, the ledger, scheduling, pause, resume, cancel."""

from __future__ import annotations

import time
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.text import slugify

from dwvlist.celery import task_queue
from dwvlist.redis import progress_counts_key, progress_rate_key
from issues.delivery.ledger import lanes_start, ledger_complete
from issues.models import Delivery, Issue
from issues.rendering import issue_render


def issue_freeze(*, issue: Issue) -> None:
    """Render the issue once into its snapshot: what readers get and the archive shows."""
    rendered = issue_render(issue)
    issue.snapshot_subject = rendered.subject
    issue.snapshot_html = rendered.html
    issue.snapshot_text = rendered.text
    issue.snapshot_at = timezone.now()
    if not issue.slug:
        issue.slug = slugify(issue.title)[:120] or f"issue-{issue.pk}"
    issue.save(update_fields=["snapshot_subject", "snapshot_html", "snapshot_text", "snapshot_at", "slug"])


def issue_send(*, issue: Issue, user=None) -> bool:
    """Start sending the issue now; return False (and do nothing) if it already started.

    Freezes the snapshot and writes the ledger; the batch tasks are queued
    as soon as the first part of the ledger is committed, so the first
    readers get the issue while the rest of the ledger is written.
    """
    if not issue.lists.exists():
        raise ValidationError("Choose at least one list before sending.")
    with transaction.atomic():
        started = Issue.objects.filter(pk=issue.pk, status__in=[Issue.Status.DRAFT, Issue.Status.SCHEDULED]).update(
            status=Issue.Status.SENDING, started_at=timezone.now(), updated_at=timezone.now()
        )
        if started != 1:
            return False
        issue.refresh_from_db()
        issue_freeze(issue=issue)
    ledger_complete(issue=issue)
    return True


def issue_schedule(*, issue: Issue, when: datetime, user=None) -> None:
    """Schedule a draft issue for `when`; refuse a time in the past."""
    if when <= timezone.now():
        raise ValidationError("The send time is in the past; choose a time in the future.")
    if not issue.lists.exists():
        raise ValidationError("Choose at least one list before scheduling.")
    updated = Issue.objects.filter(pk=issue.pk, status__in=[Issue.Status.DRAFT, Issue.Status.SCHEDULED]).update(
        status=Issue.Status.SCHEDULED, scheduled_at=when, updated_at=timezone.now()
    )
    if updated != 1:
        raise ValidationError("Only a draft can be scheduled; this issue is already sending or sent.")
    issue.refresh_from_db()


def issue_unschedule(*, issue: Issue) -> bool:
    """Turn a scheduled issue back into a draft."""
    updated = Issue.objects.filter(pk=issue.pk, status=Issue.Status.SCHEDULED).update(
        status=Issue.Status.DRAFT, scheduled_at=None, updated_at=timezone.now()
    )
    issue.refresh_from_db()
    return updated == 1


def issues_start_due() -> list[int]:
    """Start every scheduled issue whose time has come; return their ids."""
    started = []
    for issue in Issue.objects.filter(status=Issue.Status.SCHEDULED, scheduled_at__lte=timezone.now()):
        if issue_send(issue=issue):
            started.append(issue.pk)
    return started


def issue_pause(*, issue: Issue) -> bool:
    """Pause a sending issue; workers stop after their current batch."""
    updated = Issue.objects.filter(pk=issue.pk, status=Issue.Status.SENDING).update(
        status=Issue.Status.PAUSED, updated_at=timezone.now()
    )
    issue.refresh_from_db()
    return updated == 1


def issue_resume(*, issue: Issue) -> bool:
    """Resume a paused issue."""
    updated = Issue.objects.filter(pk=issue.pk, status=Issue.Status.PAUSED).update(
        status=Issue.Status.SENDING, updated_at=timezone.now()
    )
    issue.refresh_from_db()
    if updated == 1:
        transaction.on_commit(lambda: lanes_start(issue.pk))
    return updated == 1


def issue_cancel(*, issue: Issue) -> bool:
    """Cancel a scheduled, sending or paused issue; readers not yet sent to get nothing."""
    with transaction.atomic():
        updated = Issue.objects.filter(
            pk=issue.pk, status__in=[Issue.Status.SCHEDULED, Issue.Status.SENDING, Issue.Status.PAUSED]
        ).update(status=Issue.Status.CANCELLED, updated_at=timezone.now())
        if updated == 1:
            Delivery.objects.filter(
                issue_id=issue.pk, status__in=[Delivery.Status.PENDING, Delivery.Status.DEFERRED]
            ).update(status=Delivery.Status.CANCELLED, updated_at=timezone.now())
    issue.refresh_from_db()
    return updated == 1


def issue_retry_failed(*, issue: Issue) -> int:
    """Put the issue's failed rows back in the queue; return how many."""
    with transaction.atomic():
        count = Delivery.objects.filter(issue_id=issue.pk, status=Delivery.Status.FAILED).update(
            status=Delivery.Status.PENDING, attempts=0, next_attempt_at=None, updated_at=timezone.now()
        )
        if count:
            Issue.objects.filter(pk=issue.pk, status=Issue.Status.SENT).update(
                status=Issue.Status.SENDING, updated_at=timezone.now()
            )
            transaction.on_commit(lambda: lanes_start(issue.pk))
    issue.refresh_from_db()
    return count


def issue_send_test(*, issue: Issue, addresses: list[str]) -> None:
    """Queue a test copy of the issue, rendered as it stands, to each address."""
    cleaned = [a.strip() for a in addresses if a.strip()]
    transaction.on_commit(lambda: task_queue("issues.tasks.send_test", issue.pk, cleaned))


# While an issue sends, the ledger counts behind its progress are shared by
# every viewer for ten times what counting took (at most 5 s): at a million
# readers a count takes about 0.3 s, and each open page asks every second.
PROGRESS_REUSE_FACTOR = 10
PROGRESS_REUSE_MAX_SECONDS = 5.0


def _ledger_counts(issue_id: int) -> dict:
    """Return the issue's ledger rows by status, and those reclaimed, from one pass over the ledger."""
    statuses = [choice for choice, _ in Delivery.Status.choices]
    return Delivery.objects.filter(issue_id=issue_id).aggregate(
        **{status: Count("id", filter=Q(status=status)) for status in statuses},
        reclaimed=Count("id", filter=Q(reclaimed_at__isnull=False)),
    )


def _progress_key(issue: Issue) -> str:
    # The start time too: an issue id alone can name another issue after a database is restored.
    return f"{issue.pk}:{issue.started_at.timestamp() if issue.started_at else ''}"


def _cached(key: str):
    """Return the cached value, or None; a cache outage must not break the progress page."""
    from django.core.cache import cache

    try:
        return cache.get(key)
    except Exception:
        return None


def _cache_keep(key: str, value, seconds: float) -> None:
    """Cache the value if the cache answers (without it, progress is counted afresh)."""
    from django.core.cache import cache

    try:
        cache.set(key, value, seconds)
    except Exception:  # noqa: S110
        pass


def _ledger_counts_shared(issue: Issue) -> tuple[float, dict]:
    """Return (when counted, counts), reusing a recent count while the issue sends."""
    live = issue.status in (Issue.Status.SENDING, Issue.Status.PAUSED)
    key = progress_counts_key(_progress_key(issue))
    shared = _cached(key) if live else None
    if shared:
        return shared
    started = time.monotonic()
    counted = (timezone.now().timestamp(), _ledger_counts(issue.pk))
    reuse = min(PROGRESS_REUSE_MAX_SECONDS, (time.monotonic() - started) * PROGRESS_REUSE_FACTOR)
    if live and reuse >= 0.05:
        _cache_keep(key, counted, reuse)
    return counted


def issue_progress(*, issue: Issue) -> dict:
    """Return the sending figures for the progress bar, from the issue's ledger.

    The rate is measured between two counts (kept in the cache for a
    minute), falling back to the average since sending started.
    """
    issue.refresh_from_db(fields=["status", "started_at", "ledger_written_at"])
    counted_at, counts = _ledger_counts_shared(issue)
    counts = dict(counts)
    reclaimed = counts.pop("reclaimed")
    total = sum(counts.values())
    sent = sum(counts[s] for s in ("sent", "delivered", "bounced", "complained"))
    failed = counts["failed"]
    skipped = counts["skipped"] + counts["cancelled"]
    pending = counts["pending"] + counts["claimed"] + counts["deferred"]
    key = progress_rate_key(_progress_key(issue))
    previous = _cached(key)  # (counted at, sent, rate) of an earlier count
    fresh = not previous or counted_at - previous[0] >= 0.5
    if previous and fresh:
        rate = max(0.0, (sent - previous[1]) / (counted_at - previous[0]))
    elif previous:
        rate = previous[2]  # the same count, or one too close to the last to measure against
    else:
        rate = sent / max(1.0, counted_at - issue.started_at.timestamp()) if issue.started_at and sent else 0.0
    if fresh:
        _cache_keep(key, (counted_at, sent, rate), 60)
    finished = sent + failed + skipped
    return {
        "status": issue.status,
        # False while the list of readers is still being written: the total grows until then.
        "ledger_written": issue.ledger_written_at is not None or issue.status not in ("sending", "paused"),
        "total": total,
        "sent": sent,
        "failed": failed,
        "skipped": skipped,
        "pending": pending,
        "deferred": counts["deferred"],
        "reclaimed": reclaimed,
        "rate_per_second": round(rate, 1),
        "eta_seconds": round(pending / rate) if rate > 0 and pending and issue.status == "sending" else None,
        "percent": round(100.0 * finished / total, 1) if total else (100.0 if issue.status == "sent" else 0.0),
    }


def issue_draft_save(*, issue_id: int | None, fields: dict, user=None) -> Issue | None:
    """Save what the editor has typed so far: a new draft, or an issue not yet sending.

    Return the issue, or None when it has started sending meanwhile (a
    conditional update, so an autosave never changes a frozen issue).
    """
    values = {name: fields[name] for name in ("title", "subtitle", "byline", "preheader", "body")}
    lists = list(fields.get("lists") or [])
    with transaction.atomic():
        if issue_id is None:
            issue = Issue.objects.create(**values, author=user)
        else:
            editable = (Issue.Status.DRAFT, Issue.Status.SCHEDULED)
            changed = Issue.objects.filter(pk=issue_id, status__in=editable).update(**values, updated_at=timezone.now())
            if not changed:
                return None
            issue = Issue.objects.get(pk=issue_id)
        issue.lists.set(lists)
    return issue

"""Sending an issue: the snapshot, the ledger, scheduling, pause, resume, cancel."""

from __future__ import annotations

import time
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, Exists, Max, Min, OuterRef, Q
from django.utils import timezone
from django.utils.text import slugify

from issues.models import Delivery, Issue
from issues.rendering import issue_render
from subscriptions.models import Subscriber, Subscription, Suppression


def _recipients(issue: Issue):
    list_ids = list(issue.lists.values_list("id", flat=True))
    suppressed = Suppression.objects.exclude(email="").filter(email__iexact=OuterRef("email"))
    return (
        Subscriber.objects.filter(
            subscriptions__mailing_list_id__in=list_ids,
            subscriptions__status=Subscription.Status.ACTIVE,
            subscriptions__confirmed_at__isnull=False,
        )
        .exclude(Exists(suppressed))
        .distinct()
    )


def issue_recipient_count(*, issue: Issue) -> int:
    """Return how many readers the issue would reach now, each counted once."""
    return _recipients(issue).count()


LEDGER_CHUNK = 100_000  # subscriber ids per INSERT ... SELECT


def _ledger_chunk_write(issue: Issue, list_ids: list[int], low: int, high: int, now) -> int:
    """Write the ledger rows of readers with ids in [low, high) in one statement; return rows added.

    Each reader is counted once however many of the lists they are on, and
    gets the issue through the first of those lists. Safe to run twice:
    the unique (issue, subscriber) pair makes a second run add nothing.
    """
    placeholders = ", ".join(["%s"] * len(list_ids))
    delivery = Delivery._meta.db_table
    subscriber = Subscriber._meta.db_table
    subscription = Subscription._meta.db_table
    suppression = Suppression._meta.db_table
    sql = f"""
        INSERT INTO {delivery}
            (issue_id, subscriber_id, mailing_list_id, email, status, attempts, last_error, claim_token,
             provider_message_id, created_at, updated_at)
        SELECT %s, s.id, MIN(sub.mailing_list_id), s.email, 'pending', 0, '', '', '', %s, %s
          FROM {subscriber} s
          JOIN {subscription} sub ON sub.subscriber_id = s.id
         WHERE s.id >= %s AND s.id < %s
           AND sub.subscriber_id >= %s AND sub.subscriber_id < %s
           AND sub.mailing_list_id IN ({placeholders})
           AND sub.status = 'active'
           AND sub.confirmed_at IS NOT NULL
           AND NOT EXISTS (
               SELECT 1 FROM {suppression} x WHERE x.email <> '' AND LOWER(x.email) = LOWER(s.email))
         GROUP BY s.id, s.email
        ON CONFLICT (issue_id, subscriber_id) DO NOTHING
    """  # noqa: S608 (table names from the models, values as parameters)
    with connection.cursor() as cursor:
        cursor.execute(sql, [issue.pk, now, now, low, high, low, high, *list_ids])
        return cursor.rowcount


def _delivery_id_max() -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT MAX(id) FROM {Delivery._meta.db_table}")  # noqa: S608
        return cursor.fetchone()[0] or 0


def _issue_delivery_id_first(issue_id: int, *, after: int) -> int | None:
    """Return the issue's lowest ledger id above `after` (walking the primary key from there)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT MIN(id) FROM {Delivery._meta.db_table} WHERE id > %s AND issue_id + 0 = %s",  # noqa: S608
            [after, issue_id],
        )
        return cursor.fetchone()[0]


def ledger_write(*, issue: Issue, on_first_chunk=None) -> int:
    """Write one pending Delivery per reader of the issue's lists; return rows added.

    Set-based SQL, one INSERT ... SELECT per range of LEDGER_CHUNK reader
    ids, each committed on its own with the issue's ledger id bounds, so
    workers can send the first readers while the rest are written;
    `on_first_chunk` runs once the first rows are committed. The ledger
    counts as written (and the issue can finish) only when every chunk is.
    Readers whose ids are beyond the highest one when writing began joined
    after sending started and are left out. Running it again (after a
    crash) completes the ledger without adding duplicates.
    """
    from issues.delivery import ledger_mark_alive

    list_ids = list(issue.lists.values_list("id", flat=True))
    if not list_ids:
        return 0
    now = timezone.now()
    bounds = Subscriber.objects.aggregate(low=Min("id"), high=Max("id"))
    low, high = bounds["low"] or 0, bounds["high"] or -1
    added = 0
    chunk_low = low
    while True:
        ledger_mark_alive(issue_id=issue.pk)
        if _ledger_stop_if_cancelled(issue):
            return added
        chunk_high = min(chunk_low + LEDGER_CHUNK, high + 1)
        with transaction.atomic():
            before = _delivery_id_max()
            added += _ledger_chunk_write(issue, list_ids, chunk_low, chunk_high, now) if chunk_low <= high else 0
            after = _delivery_id_max()
            fields = {"ledger_id_max": after}
            if issue.ledger_id_min is None:
                first = _issue_delivery_id_first(issue.pk, after=before)
                fields["ledger_id_min"] = issue.ledger_id_min = first if first is not None else after + 1
            if chunk_high > high:
                fields["ledger_written_at"] = timezone.now()
            Issue.objects.filter(pk=issue.pk).update(**fields)
        if on_first_chunk is not None:
            on_first_chunk()
            on_first_chunk = None
        if chunk_high > high:
            _ledger_stop_if_cancelled(issue)
            return added
        chunk_low = chunk_high


def _ledger_stop_if_cancelled(issue: Issue) -> bool:
    """If the issue was cancelled while its ledger was written, cancel the rows written since; return True."""
    if not Issue.objects.filter(pk=issue.pk, status=Issue.Status.CANCELLED).exists():
        return False
    Delivery.objects.filter(issue_id=issue.pk, status=Delivery.Status.PENDING).update(
        status=Delivery.Status.CANCELLED, updated_at=timezone.now()
    )
    return True


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


def _lanes_start(issue_id: int) -> None:
    from django.conf import settings

    from issues.tasks import send_batch

    for _ in range(settings.SEND_LANES):
        send_batch.delay(issue_id)


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


def ledger_complete(*, issue: Issue) -> int:
    """Write (or finish writing) the issue's ledger and start its batch tasks; return rows added."""
    issue_id = issue.pk
    return ledger_write(issue=issue, on_first_chunk=lambda: transaction.on_commit(lambda: _lanes_start(issue_id)))


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
        transaction.on_commit(lambda: _lanes_start(issue.pk))
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
            transaction.on_commit(lambda: _lanes_start(issue.pk))
    issue.refresh_from_db()
    return count


def issue_send_test(*, issue: Issue, addresses: list[str]) -> None:
    """Queue a test copy of the issue, rendered as it stands, to each address."""
    from issues.tasks import send_test

    cleaned = [a.strip() for a in addresses if a.strip()]
    transaction.on_commit(lambda: send_test.delay(issue.pk, cleaned))


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
    key = f"dwvlist:progress-counts:{_progress_key(issue)}"
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
    key = f"dwvlist:progress-rate:{_progress_key(issue)}"
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
    values = {name: fields[name] for name in ("title", "subtitle", "byline", "body")}
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

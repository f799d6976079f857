"""Sending an issue: the snapshot, the ledger, scheduling, pause, resume, cancel."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.text import slugify

from dwvlist.audit.models import AuditEntry
from dwvlist.audit.services import audit_record
from dwvlist.celery import task_queue
from dwvlist.redis import progress_counts_key
from issues.delivery.ledger import lanes_start
from issues.models import Delivery, Issue
from issues.rendering import issue_render
from issues.selectors import ledger_counts

log = logging.getLogger(__name__)

EDITABLE_STATUSES = (Issue.Status.DRAFT, Issue.Status.SCHEDULED)


def issue_draft_save(*, form, actor=None) -> Issue:
    """Save a valid IssueForm (a new issue, or one not yet sending) and its lists; return the issue.

    A new issue's author is the actor (also the audit trail's hook).
    Refuses an issue that started sending meanwhile: what readers get is
    frozen then.
    """
    with transaction.atomic():
        created = form.instance.pk is None
        if not created:
            status = Issue.objects.select_for_update().filter(pk=form.instance.pk).values_list("status", flat=True)
            if status.first() not in EDITABLE_STATUSES:
                raise ValidationError("This issue has started sending (or was cancelled): it can no longer be edited.")
        saved = form.save(commit=False)
        if saved.author_id is None and actor is not None and actor.is_authenticated:
            saved.author = actor
        saved.save()
        form.save_m2m()
        action = AuditEntry.Action.ISSUE_CREATED if created else AuditEntry.Action.ISSUE_EDITED
        audit_record(action=action, object_id=saved.pk, summary=f"{saved.title}: {', '.join(form.changed_data)}"[:500])
    return saved


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


def _issue_audit(action: str, issue: Issue, *, user=None, summary: str = "") -> None:
    """Record the action on the issue in the audit trail and the log."""
    audit_record(action=action, object_id=issue.pk, summary=(summary or issue.title)[:500], user=user)
    log.info("%s: issue %s", AuditEntry.Action(action).label, issue.pk, extra={"issue_id": issue.pk})


def issue_send(*, issue: Issue, user=None) -> bool:
    """Start sending the issue now; return False (and do nothing) if it already started.

    Freezes the snapshot, moves the issue to sending and queues the task that
    writes the ledger ("issues.tasks.complete_ledger"): a web request never
    writes a million rows. That task queues the batch tasks as soon as the
    first part of the ledger is committed, so the first readers get the
    issue while the rest of the ledger is written.
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
        _issue_audit(AuditEntry.Action.ISSUE_SENT, issue, user=user)
        issue_id = issue.pk
        transaction.on_commit(lambda: task_queue("issues.tasks.complete_ledger", issue_id))
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
    _issue_audit(AuditEntry.Action.ISSUE_SCHEDULED, issue, user=user, summary=f"for {when.isoformat()}")


def issue_unschedule(*, issue: Issue) -> bool:
    """Turn a scheduled issue back into a draft."""
    updated = Issue.objects.filter(pk=issue.pk, status=Issue.Status.SCHEDULED).update(
        status=Issue.Status.DRAFT, scheduled_at=None, updated_at=timezone.now()
    )
    issue.refresh_from_db()
    if updated == 1:
        _issue_audit(AuditEntry.Action.ISSUE_UNSCHEDULED, issue)
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
    if updated == 1:
        _issue_audit(AuditEntry.Action.ISSUE_PAUSED, issue)
    return updated == 1


def issue_resume(*, issue: Issue) -> bool:
    """Resume a paused issue."""
    updated = Issue.objects.filter(pk=issue.pk, status=Issue.Status.PAUSED).update(
        status=Issue.Status.SENDING, updated_at=timezone.now()
    )
    issue.refresh_from_db()
    if updated == 1:
        _issue_audit(AuditEntry.Action.ISSUE_RESUMED, issue)
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
            _issue_audit(AuditEntry.Action.ISSUE_CANCELLED, issue)
    issue.refresh_from_db()
    return updated == 1


def issue_cancel_preview(*, issue: Issue) -> dict:
    """Return what cancelling would do now: readers who would not get the issue, and those in a batch being sent."""
    if issue.status == Issue.Status.SCHEDULED or (issue.ledger_written_at is None and not issue.deliveries.exists()):
        from issues.delivery.ledger import issue_recipient_count

        return {"will_not_get": issue_recipient_count(issue=issue), "in_flight": 0, "sent": 0, "listing": False}
    counts = issue.deliveries.aggregate(
        waiting=Count("id", filter=Q(status__in=[Delivery.Status.PENDING, Delivery.Status.DEFERRED])),
        in_flight=Count("id", filter=Q(status=Delivery.Status.CLAIMED)),
        sent=Count("id", filter=Q(sent_at__isnull=False)),
    )
    return {
        "will_not_get": counts["waiting"],
        "in_flight": counts["in_flight"],
        "sent": counts["sent"],
        # Still writing the ledger: readers not yet listed will not get it either.
        "listing": issue.ledger_written_at is None,
    }


RETRYABLE_STATUSES = (Issue.Status.SENDING, Issue.Status.SENT)


def issue_retryable_count(*, issue: Issue) -> int:
    """Return how many of the issue's failures were temporary (worth sending again)."""
    return Delivery.objects.filter(
        issue_id=issue.pk, status=Delivery.Status.FAILED, failure_kind=Delivery.Failure.TRANSIENT
    ).count()


def issue_retry_failed(*, issue: Issue) -> int:
    """Put the issue's temporary failures back in the queue; return how many.

    Permanent failures (refused addresses, copies that could not be built)
    would fail again and stay as they are. A paused issue is retried only
    after it is resumed, a cancelled one never: nothing would send them.
    """
    with transaction.atomic():
        locked = Issue.objects.select_for_update().filter(pk=issue.pk, status__in=RETRYABLE_STATUSES).first()
        if locked is None:
            count = 0
        else:
            count = Delivery.objects.filter(
                issue_id=issue.pk, status=Delivery.Status.FAILED, failure_kind=Delivery.Failure.TRANSIENT
            ).update(
                status=Delivery.Status.PENDING,
                failure_kind="",
                attempts=0,
                next_attempt_at=None,
                updated_at=timezone.now(),
            )
        if count:
            Issue.objects.filter(pk=issue.pk, status=Issue.Status.SENT).update(
                status=Issue.Status.SENDING, updated_at=timezone.now()
            )
            transaction.on_commit(lambda: lanes_start(issue.pk))
            _issue_audit(AuditEntry.Action.ISSUE_RETRIED, issue, summary=f"{count} failed deliveries queued again")
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


# The rate is measured over the ledger's last half minute: rows whose
# sent_at falls in it. A batch is recorded at once when it ends, so a
# shorter window would jump between zero and a burst.
RATE_WINDOW_SECONDS = 30.0


def _ledger_counts(issue_id: int, *, since) -> dict:
    """Return the issue's ledger counts (selectors.ledger_counts, the one count everyone shows), those sent
    since `since`, and why readers were skipped."""
    counts = ledger_counts(issue_ids=[issue_id], sent_since=since)[issue_id]
    counts["skipped_reasons"] = (
        list(
            Delivery.objects.filter(issue_id=issue_id, status=Delivery.Status.SKIPPED)
            .values_list("last_error")
            .annotate(count=Count("id"))
            .order_by("-count")
        )
        if counts["skipped"]
        else []
    )
    return counts


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
    now = timezone.now()
    counted = (now.timestamp(), _ledger_counts(issue.pk, since=now - timedelta(seconds=RATE_WINDOW_SECONDS)))
    reuse = min(PROGRESS_REUSE_MAX_SECONDS, (time.monotonic() - started) * PROGRESS_REUSE_FACTOR)
    if live and reuse >= 0.05:
        _cache_keep(key, counted, reuse)
    return counted


def issue_progress_counts(*, issue: Issue) -> dict[str, int]:
    """Return the issue's ledger rows by status (see selectors.ledger_counts), shared with its progress viewers."""
    counts = _ledger_counts_shared(issue)[1]
    return {name: value for name, value in counts.items() if name not in ("recent", "skipped_reasons")}


def seconds_words(seconds: float) -> str:
    """Return a duration as an editor reads it: "45 seconds", "12 minutes", "1.5 hours"."""
    seconds = round(seconds)
    if seconds < 90:
        return f"{seconds} second{'' if seconds == 1 else 's'}"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} minutes"
    return f"{minutes / 60:.1f} hours"


def issue_progress(*, issue: Issue) -> dict:
    """Return the sending figures for the progress page, from the issue's ledger.

    Every reader is in exactly one figure: sent, failed, skipped (with the
    reasons), cancelled, waiting (to be sent or retried) or in flight (held
    by a worker's batch). The rate is what the ledger recorded as sent over
    its last RATE_WINDOW_SECONDS, and the time left follows from it; both
    are blank until the first batch is recorded. After a pause or a cancel
    the batches already in flight still finish: `stopping` says how many
    readers they hold until they are recorded.
    """
    issue.refresh_from_db(fields=["status", "started_at", "sent_at", "ledger_written_at"])
    counted_at, counts = _ledger_counts_shared(issue)
    counts = dict(counts)
    total = sum(counts[status] for status, _ in Delivery.Status.choices)
    sent = sum(counts[s] for s in ("sent", "delivered", "bounced", "complained"))
    waiting = counts["pending"] + counts["deferred"]
    in_flight = counts["claimed"]
    recorded = sent + counts["failed"]
    rate = eta = None
    if recorded and issue.started_at:
        window = min(RATE_WINDOW_SECONDS, max(1.0, counted_at - issue.started_at.timestamp()))
        rate = counts["recent"] / window
        left = waiting + in_flight
        if issue.status == Issue.Status.SENDING and left:
            eta = round(left / rate) if rate > 0 else None
    finished = recorded + counts["skipped"] + counts["cancelled"]
    duration = None
    if issue.status == Issue.Status.SENT and issue.started_at and issue.sent_at:
        duration = max(0, round((issue.sent_at - issue.started_at).total_seconds()))
    return {
        "status": issue.status,
        # False while the list of readers is still being written: the total grows until then.
        "ledger_written": issue.ledger_written_at is not None or issue.status not in ("sending", "paused"),
        "total": total,
        "sent": sent,
        "failed": counts["failed"],
        "skipped": counts["skipped"],
        "skipped_reasons": [{"reason": r or "no reason recorded", "count": n} for r, n in counts["skipped_reasons"]],
        "cancelled": counts["cancelled"],
        "pending": waiting,
        "deferred": counts["deferred"],
        "in_flight": in_flight,
        # Paused or cancelled, with batches still out: they finish, then the figures stand.
        "stopping": in_flight if issue.status in (Issue.Status.PAUSED, Issue.Status.CANCELLED) else 0,
        "reclaimed": counts["reclaimed"],
        "rate_per_second": round(rate, 1) if rate is not None else None,
        "eta_seconds": eta,
        "duration_seconds": duration,
        "duration_text": seconds_words(duration) if duration is not None else "",
        "eta_text": seconds_words(eta) if eta is not None else "",
        "percent": round(100.0 * finished / total, 1) if total else (100.0 if issue.status == "sent" else 0.0),
    }


def issue_autosave(*, issue_id: int | None, fields: dict, user=None) -> Issue | None:
    """Save what the editor has typed so far (the compose page's autosave): a new draft, or an issue not yet sending.

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

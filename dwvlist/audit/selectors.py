"""Reads of the audit trail, for the editor area's page."""

from __future__ import annotations

from datetime import date, datetime, time

from django.db.models import QuerySet
from django.utils import timezone

from dwvlist.audit.models import AuditEntry


def audit_entries(
    *,
    action: str = "",
    object_type: str = "",
    object_id: str = "",
    actor: str = "",
    since: date | None = None,
    until: date | None = None,
) -> QuerySet[AuditEntry]:
    """Return the entries matching every filter given, newest first (dates are whole days, local time)."""
    entries = AuditEntry.objects.all()
    if action:
        entries = entries.filter(action=action)
    if object_type:
        entries = entries.filter(object_type=object_type)
    if object_id:
        entries = entries.filter(object_id=object_id)
    if actor:
        entries = entries.filter(actor_name__iexact=actor) | entries.filter(token_label__iexact=actor)
    zone = timezone.get_current_timezone()
    if since:
        entries = entries.filter(at__gte=datetime.combine(since, time.min, tzinfo=zone))
    if until:
        entries = entries.filter(at__lt=datetime.combine(until, time.max, tzinfo=zone))
    return entries.order_by("-at", "-id")


def audit_actors() -> list[str]:
    """Return the names that appear as actors, for the filter's choices."""
    names = AuditEntry.objects.exclude(actor_name="").values_list("actor_name", flat=True).distinct()
    return sorted(set(names), key=str.lower)

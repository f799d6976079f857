"""AuditEntry: one row per staff action, never changed or deleted."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditEntryQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("The audit trail is append-only: entries are never changed.")

    def delete(self):
        raise TypeError("The audit trail is append-only: entries are never deleted.")


class AuditEntry(models.Model):
    """Who (a staff user, an API token, or the system) did what to which object, when and from where.

    Append-only: the model refuses to save an entry twice or delete one,
    and on PostgreSQL and SQLite a trigger refuses UPDATE and DELETE. The
    actor is kept by id and by name, with no foreign-key constraint, so
    that removing a staff account leaves its entries as they were. No
    reader's address is ever written here: readers are named by id.
    """

    class Action(models.TextChoices):
        ISSUE_CREATED = "issue.created", "Issue created"
        ISSUE_EDITED = "issue.edited", "Issue edited"
        ISSUE_SCHEDULED = "issue.scheduled", "Issue scheduled"
        ISSUE_UNSCHEDULED = "issue.unscheduled", "Issue unscheduled"
        ISSUE_SENT = "issue.sent", "Issue sending started"
        ISSUE_PAUSED = "issue.paused", "Issue paused"
        ISSUE_RESUMED = "issue.resumed", "Issue resumed"
        ISSUE_CANCELLED = "issue.cancelled", "Issue cancelled"
        ISSUE_RETRIED = "issue.retried", "Issue failures retried"
        ISSUE_DELETED = "issue.deleted", "Issue deleted"
        LIST_CREATED = "list.created", "List created"
        LIST_CHANGED = "list.changed", "List settings changed"
        LIST_DELETED = "list.deleted", "List deleted"
        SUBSCRIBER_ADDED = "subscriber.added", "Subscriber added"
        SUBSCRIBER_CHANGED = "subscriber.changed", "Subscriber changed"
        SUBSCRIBER_UNSUBSCRIBED = "subscriber.unsubscribed", "Subscriber unsubscribed"
        SUBSCRIBER_SUPPRESSED = "subscriber.suppressed", "Address suppressed"
        SUBSCRIBER_UNSUPPRESSED = "subscriber.unsuppressed", "Suppression removed"
        SUBSCRIBER_ERASED = "subscriber.erased", "Subscriber erased"
        SUBSCRIBER_DELETED = "subscriber.deleted", "Subscriber deleted"
        IMPORT_STARTED = "import.started", "Import started"
        EXPORT_DOWNLOADED = "export.downloaded", "Export downloaded"
        TOKEN_CREATED = "token.created", "API token created"
        TOKEN_REVOKED = "token.revoked", "API token revoked"
        STAFF_CREATED = "staff.created", "Staff account created"
        STAFF_CHANGED = "staff.changed", "Staff account changed"
        STAFF_ROLES_CHANGED = "staff.roles_changed", "Staff roles changed"
        STAFF_DELETED = "staff.deleted", "Staff account deleted"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_name = models.CharField(max_length=150, blank=True, help_text="The user's name when they acted.")
    token_label = models.CharField(max_length=200, blank=True, help_text="The API token used, if any.")
    action = models.CharField(max_length=40, choices=Action.choices, db_index=True)
    object_type = models.CharField(max_length=40, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    summary = models.CharField(max_length=500, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True, unpack_ipv4=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit trail"
        indexes = [models.Index(fields=["object_type", "object_id"], name="auditentry_object")]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.who} {self.action} {self.object_type} {self.object_id}".rstrip()

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise TypeError("The audit trail is append-only: entries are never changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("The audit trail is append-only: entries are never deleted.")

    @property
    def who(self) -> str:
        """Return how the actor is shown: the user, the token, or "system"."""
        if self.token_label:
            return f"{self.actor_name or 'token'} (token {self.token_label})"
        return self.actor_name or "system"

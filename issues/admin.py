from django.contrib import admin

from dwvlist.audit.admin import AuditedAdmin
from dwvlist.audit.models import AuditEntry
from issues.models import Delivery, DeliveryEvent, Issue
from subscriptions.admin import ScalableAdmin


@admin.register(Issue)
class IssueAdmin(AuditedAdmin):
    audit_created = AuditEntry.Action.ISSUE_CREATED
    audit_changed = AuditEntry.Action.ISSUE_EDITED
    audit_deleted = AuditEntry.Action.ISSUE_DELETED

    list_display = ["title", "status", "scheduled_at", "sent_at", "author"]
    list_filter = ["status", "lists", "sent_at"]
    search_fields = ["title", "subtitle", "byline"]
    filter_horizontal = ["lists"]
    readonly_fields = ["snapshot_subject", "snapshot_html", "snapshot_text", "snapshot_at", "started_at"]


class ReadOnlyAdmin(ScalableAdmin):
    """The ledger and the provider's reports are records: nobody edits them by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ["issue", "email", "status", "attempts", "sent_at", "provider_message_id"]
    list_filter = ["status", "issue"]
    search_fields = ["=email"]
    search_help_text = "A whole address."
    list_select_related = ["issue"]
    raw_id_fields = ["subscriber", "mailing_list"]
    ordering = ["-id"]


@admin.register(DeliveryEvent)
class DeliveryEventAdmin(ReadOnlyAdmin):
    list_display = ["provider", "event_type", "recipient", "occurred_at", "received_at"]
    list_filter = ["provider", "event_type", "received_at"]
    search_fields = ["=recipient", "=message_id", "=event_id"]
    search_help_text = "A whole address, message id or event id."
    raw_id_fields = ["delivery"]
    ordering = ["-id"]

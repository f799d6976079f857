from django.contrib import admin

from issues.models import Delivery, DeliveryEvent, Issue, UnparsedBounce
from issues.selectors import event_source, event_status_code
from subscriptions.admin import ScalableAdmin


@admin.register(Issue)
class IssueAdmin(admin.ModelAdmin):
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
    list_display = ["provider", "event_type", "recipient", "source", "status_code", "diagnostic", "occurred_at"]
    list_filter = ["provider", "event_type", "received_at"]
    search_fields = ["=recipient", "=message_id", "=event_id"]
    search_help_text = "A whole address, message id or event id."
    raw_id_fields = ["delivery"]
    ordering = ["-id"]

    @admin.display(description="source")
    def source(self, obj: DeliveryEvent) -> str:
        return event_source(obj)

    @admin.display(description="status")
    def status_code(self, obj: DeliveryEvent) -> str:
        return event_status_code(obj)

    @admin.display(description="what the server said")
    def diagnostic(self, obj: DeliveryEvent) -> str:
        return obj.description[:200]


@admin.register(UnparsedBounce)
class UnparsedBounceAdmin(ScalableAdmin):
    """Returned mail nothing could read: an admin looks at it, and marks it handled."""

    list_display = ["received_at", "source", "sender", "subject", "size", "handled"]
    list_filter = ["handled", "source"]
    search_fields = ["=sender", "=message_id"]
    search_help_text = "A whole sender address or Message-ID."
    ordering = ["-id"]
    fields = ["received_at", "source", "sender", "subject", "message_id", "size", "reason", "mail", "handled"]
    readonly_fields = ["received_at", "source", "sender", "subject", "message_id", "size", "reason", "mail"]
    actions = ["mark_handled"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="the mail as received")
    def mail(self, obj: UnparsedBounce) -> str:
        return bytes(obj.raw)[:100_000].decode("utf-8", "replace")

    @admin.action(description="Mark as handled")
    def mark_handled(self, request, queryset):
        self.message_user(request, f"{queryset.update(handled=True)} marked as handled.")

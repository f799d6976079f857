from django.contrib import admin

from issues.models import Delivery, DeliveryEvent, Issue


@admin.register(Issue)
class IssueAdmin(admin.ModelAdmin):
    list_display = ["title", "status", "scheduled_at", "sent_at", "author"]
    list_filter = ["status", "lists", "sent_at"]
    search_fields = ["title", "subtitle", "byline", "body"]
    filter_horizontal = ["lists"]
    readonly_fields = ["snapshot_subject", "snapshot_html", "snapshot_text", "snapshot_at", "started_at"]


class ReadOnlyAdmin(admin.ModelAdmin):
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
    search_fields = ["email", "provider_message_id"]
    list_select_related = ["issue"]
    show_full_result_count = False


@admin.register(DeliveryEvent)
class DeliveryEventAdmin(ReadOnlyAdmin):
    list_display = ["provider", "event_type", "recipient", "occurred_at", "received_at"]
    list_filter = ["provider", "event_type", "received_at"]
    search_fields = ["recipient", "message_id", "event_id"]
    show_full_result_count = False

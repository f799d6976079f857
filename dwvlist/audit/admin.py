from django.contrib import admin

from dwvlist.audit.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only for everyone, superusers included: the trail is append-only."""

    list_display = ("at", "who", "action", "object_type", "object_id", "summary", "ip")
    list_filter = ("action", "object_type")
    search_fields = ("actor_name", "token_label", "object_id", "summary")
    date_hierarchy = "at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

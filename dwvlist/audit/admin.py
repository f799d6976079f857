from datetime import datetime

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


def _changed_fields(form) -> list[str]:
    """Return the form's changed fields, less datetimes that are the same moment (Django lists a split
    date and time as changed whenever the shown time zone is not UTC)."""
    changed = []
    for name in form.changed_data:
        initial, cleaned = form.initial.get(name), form.cleaned_data.get(name)
        if isinstance(initial, datetime) and isinstance(cleaned, datetime) and initial == cleaned:
            continue
        changed.append(name)
    return changed


class AuditedAdmin(admin.ModelAdmin):
    """A ModelAdmin whose adds, changes and deletes each leave one audit entry.

    Set `audit_created`, `audit_changed` and `audit_deleted` to actions of
    AuditEntry.Action; `audit_roles_fields` names fields whose change is
    recorded as `audit_roles_changed` instead (a staff account's groups).
    """

    audit_created = ""
    audit_changed = ""
    audit_deleted = ""
    audit_roles_fields: tuple[str, ...] = ()
    audit_roles_changed = ""

    def audit_summary(self, obj) -> str:
        """Return how the object is named in its entries (never a reader's address)."""
        return str(obj)

    def save_related(self, request, form, formsets, change):
        # After save_model: the entry names the many-to-many fields (groups) too.
        super().save_related(request, form, formsets, change)
        from dwvlist.audit.services import audit_record

        changed = _changed_fields(form)
        for formset in formsets:
            if formset.has_changed():
                changed.append(formset.prefix)
        obj = form.instance
        if not change:
            action, summary = self.audit_created, self.audit_summary(obj)
        elif self.audit_roles_changed and set(changed) & set(self.audit_roles_fields):
            action, summary = self.audit_roles_changed, f"{self.audit_summary(obj)}: {', '.join(changed)}"
        else:
            action, summary = self.audit_changed, f"{self.audit_summary(obj)}: {', '.join(changed) or 'saved'}"
        if action and (not change or changed):
            audit_record(action=action, object_id=obj.pk, summary=summary)

    def delete_model(self, request, obj):
        from dwvlist.audit.services import audit_record

        pk, summary = obj.pk, self.audit_summary(obj)
        super().delete_model(request, obj)
        if self.audit_deleted:
            audit_record(action=self.audit_deleted, object_id=pk, summary=summary)

    def delete_queryset(self, request, queryset):
        from dwvlist.audit.services import audit_record

        gone = [(obj.pk, self.audit_summary(obj)) for obj in queryset]
        super().delete_queryset(request, queryset)
        if self.audit_deleted:
            for pk, summary in gone:
                audit_record(action=self.audit_deleted, object_id=pk, summary=summary)

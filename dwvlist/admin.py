"""Staff accounts in the Django admin, without a way for Admins to crown themselves."""

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User

from dwvlist.audit.admin import AuditedAdmin
from dwvlist.audit.models import AuditEntry


class StaffUserAdmin(AuditedAdmin, UserAdmin):
    audit_created = AuditEntry.Action.STAFF_CREATED
    audit_changed = AuditEntry.Action.STAFF_CHANGED
    audit_deleted = AuditEntry.Action.STAFF_DELETED
    audit_roles_fields = ("groups", "is_staff", "is_superuser", "is_active", "user_permissions")
    audit_roles_changed = AuditEntry.Action.STAFF_ROLES_CHANGED

    def audit_summary(self, obj) -> str:
        return obj.get_username()

    # Admins manage staff accounts, but only a superuser may grant superuser
    # status or raw permissions; roles are given through the groups.
    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            fields += ["is_superuser", "user_permissions"]
        return fields

    def get_queryset(self, request):
        users = super().get_queryset(request)
        # Admins cannot edit (or lock out) superusers.
        return users if request.user.is_superuser else users.filter(is_superuser=False)


admin.site.unregister(User)
admin.site.register(User, StaffUserAdmin)


class RoleAdmin(AuditedAdmin, GroupAdmin):
    """A role's permissions changed (by a superuser) is a change of every member's role."""

    audit_created = AuditEntry.Action.STAFF_ROLES_CHANGED
    audit_changed = AuditEntry.Action.STAFF_ROLES_CHANGED
    audit_deleted = AuditEntry.Action.STAFF_ROLES_CHANGED

    def audit_summary(self, obj) -> str:
        return f"role {obj.name}"


admin.site.unregister(Group)
admin.site.register(Group, RoleAdmin)

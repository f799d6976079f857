from django.contrib import admin, messages
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from dwvlist.access import SUBSCRIBERS_READ, user_may
from dwvlist.audit.admin import AuditedAdmin
from dwvlist.audit.models import AuditEntry
from issues.feedback.events import EVENT_PROVIDERS, EVENT_TYPES
from issues.models import Delivery, DeliveryEvent, Issue, UnparsedBounce
from issues.selectors import FAILURE_STATUSES, event_source, event_status_code
from subscriptions.admin import ScalableAdmin

# Only the editor's own pages move an issue between statuses (they snapshot,
# write the ledger, queue the work); the admin never does.
_ALWAYS_READ_ONLY = [
    "status",
    "scheduled_at",
    "started_at",
    "sent_at",
    "snapshot_subject",
    "snapshot_html",
    "snapshot_text",
    "snapshot_at",
    "ledger_id_min",
    "ledger_id_max",
    "ledger_written_at",
    "archive_hidden_at",
    "archive_hidden_by",
]
_EDITABLE_STATUSES = (Issue.Status.DRAFT, Issue.Status.SCHEDULED)


@admin.register(Issue)
class IssueAdmin(AuditedAdmin):
    """Drafts can be edited here; an issue that started sending is a record: read-only, never deleted."""

    audit_created = AuditEntry.Action.ISSUE_CREATED
    audit_changed = AuditEntry.Action.ISSUE_EDITED
    audit_deleted = AuditEntry.Action.ISSUE_DELETED

    list_display = ["title", "status", "scheduled_at", "sent_at", "author", "archive_hidden_at"]
    list_filter = ["status", "lists", "sent_at"]
    search_fields = ["title", "subtitle", "byline"]
    filter_horizontal = ["lists"]
    actions = ["hide_from_archive", "show_in_archive"]

    def _frozen(self, obj) -> bool:
        return obj is not None and obj.status not in _EDITABLE_STATUSES

    def get_readonly_fields(self, request, obj=None):
        if self._frozen(obj):
            return [field.name for field in Issue._meta.fields if field.name != "id"] + ["lists"]
        return _ALWAYS_READ_ONLY

    def has_change_permission(self, request, obj=None):
        return not self._frozen(obj) and super().has_change_permission(request, obj)

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) or super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        # An issue with a ledger is the record of who got what: hide it from the archive instead.
        if obj is not None and (self._frozen(obj) or Delivery.objects.filter(issue_id=obj.pk).exists()):
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # it would delete issues with a ledger, one delivery at a time
        return actions

    @admin.action(description="Hide from the public archive", permissions=["archive"])
    def hide_from_archive(self, request, queryset):
        count = queryset.filter(archive_hidden_at__isnull=True).update(
            archive_hidden_at=timezone.now(), archive_hidden_by=request.user
        )
        self.message_user(request, f"{count} issue(s) hidden from the archive.", messages.SUCCESS)

    @admin.action(description="Show in the public archive again", permissions=["archive"])
    def show_in_archive(self, request, queryset):
        count = queryset.filter(archive_hidden_at__isnull=False).update(archive_hidden_at=None, archive_hidden_by=None)
        self.message_user(request, f"{count} issue(s) shown in the archive again.", messages.SUCCESS)

    def has_archive_permission(self, request) -> bool:
        # Admins only: hiding what readers were sent is an editorial decision above an editor's.
        return request.user.has_perm("issues.delete_issue")


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
    """Admins see the whole ledger; editors only what an issue's report shows them (the failures)."""

    list_display = ["issue", "email", "status", "attempts", "sent_at", "provider_message_id"]

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if user_may(request.user, SUBSCRIBERS_READ):
            return queryset
        return queryset.filter(status__in=FAILURE_STATUSES)

    list_filter = ["status", "issue"]
    search_fields = ["=email"]
    search_help_text = "A whole address."
    list_select_related = ["issue"]
    raw_id_fields = ["subscriber", "mailing_list"]
    ordering = ["-id"]


class _FixedChoicesFilter(admin.SimpleListFilter):
    """A filter whose choices are known in advance: no SELECT DISTINCT over ten million events."""

    choices_known: tuple[str, ...] = ()

    def lookups(self, request, model_admin):
        return [(value, value) for value in self.choices_known]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(**{self.parameter_name: value}) if value else queryset


class EventTypeFilter(_FixedChoicesFilter):
    title = "event type"
    parameter_name = "event_type"
    choices_known = EVENT_TYPES


class ProviderFilter(_FixedChoicesFilter):
    title = "provider"
    parameter_name = "provider"
    choices_known = EVENT_PROVIDERS


@admin.register(DeliveryEvent)
class DeliveryEventAdmin(ReadOnlyAdmin):
    """Admins see every provider report; editors only those about failures, as the report shows them."""

    list_display = ["provider", "event_type", "recipient", "source", "status_code", "diagnostic", "occurred_at"]
    list_filter = [ProviderFilter, EventTypeFilter, "received_at"]
    # Each served by an index: the address lower-cased, the message id
    # exactly, the event id by its beginning (stored ids end with the address).
    search_fields = ["recipient", "message_id", "event_id"]
    search_help_text = "A whole address, a whole message id, or the provider's event id."

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        found = queryset.alias(address=Lower("recipient")).filter(
            Q(address=term.lower()) | Q(message_id=term) | Q(event_id__startswith=term)
        )
        return found, False

    raw_id_fields = ["delivery"]
    ordering = ["-id"]

    def get_ordering(self, request):
        # Filtered by date, newest first by date: the (received_at, id) index
        # then finds a range's newest rows at once, while walking the ids
        # from the newest event would pass every event since.
        if any(key.startswith("received_at__") for key in request.GET):
            return ["-received_at", "-id"]
        return super().get_ordering(request)

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if user_may(request.user, SUBSCRIBERS_READ):
            return queryset
        return queryset.filter(event_type__in=["bounced", "complained", "rejected", "failed"])

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

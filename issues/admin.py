from django.contrib import admin
from django.db.models import Q
from django.db.models.functions import Lower

from issues.feedback.events import EVENT_PROVIDERS, EVENT_TYPES
from issues.models import Delivery, DeliveryEvent, Issue
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
    list_display = ["provider", "event_type", "recipient", "occurred_at", "received_at"]
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

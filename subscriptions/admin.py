"""The Django admin for Admins, built to stay fast at a million subscribers.

No full-table counts: show_full_result_count is off and the paginator
estimates large counts on PostgreSQL. Searches use prefix matches on
lower-cased columns, which indexes serve; filters on subscriptions use
EXISTS instead of joins that would need DISTINCT.
"""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Lower
from django.shortcuts import redirect
from django.utils.functional import cached_property

from dwvlist.audit.admin import AuditedAdmin
from dwvlist.audit.models import AuditEntry
from subscriptions.addresses import email_hashes, email_normalize
from subscriptions.models import ImportJob, MailingList, StaffJob, Subscriber, Subscription, Suppression
from subscriptions.staff_jobs.services import staff_job_bulk_create
from subscriptions.suppressions import suppression_add, suppression_find

EXACT_COUNT_BELOW = 10_000


class EstimatedCountPaginator(Paginator):
    """Count exactly when the result is small; estimate from the planner when it is large.

    Only on PostgreSQL: its EXPLAIN gives a row estimate for any filtered
    query at no cost. Elsewhere (SQLite, small installs) counts are exact.
    """

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if connection.vendor != "postgresql" or not hasattr(queryset, "query"):
            return super().count
        compiler = queryset.order_by().query.get_compiler(using=queryset.db)
        sql, params = compiler.as_sql()
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
            plan = cursor.fetchone()[0]
        if isinstance(plan, str):
            plan = json.loads(plan)
        estimate = int(plan[0]["Plan"]["Plan Rows"])
        if estimate < EXACT_COUNT_BELOW:
            return super().count
        return estimate


class ScalableAdmin(AuditedAdmin):
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_per_page = 50


@admin.register(MailingList)
class MailingListAdmin(AuditedAdmin):
    audit_created = AuditEntry.Action.LIST_CREATED
    audit_changed = AuditEntry.Action.LIST_CHANGED
    audit_deleted = AuditEntry.Action.LIST_DELETED

    list_display = ["name", "slug", "from_email", "is_public", "archive_enabled", "tracking_enabled", "double_opt_in"]
    list_filter = ["is_public", "archive_enabled", "tracking_enabled", "double_opt_in"]
    search_fields = ["name", "slug", "from_email"]
    prepopulated_fields = {"slug": ["name"]}
    fieldsets = [
        (None, {"fields": ["name", "slug", "description"]}),
        ("Sender", {"fields": ["from_name", "from_email", "reply_to", "footer_text"]}),
        ("Masthead of the mail", {"fields": ["logo_url", "accent_colour"]}),
        ("Mail from readers", {"fields": ["contact_email", "subscribe_by_mail"]}),
        ("Settings", {"fields": ["is_public", "archive_enabled", "tracking_enabled", "double_opt_in", "send_welcome"]}),
    ]


class SubscriptionInline(admin.TabularInline):
    model = Subscription
    extra = 0
    raw_id_fields = ["unsubscribe_issue"]
    fields = [
        "mailing_list",
        "status",
        "consent_source",
        "consented_at",
        "consent_detail",
        "confirmed_at",
        "unsubscribed_at",
        "unsubscribe_source",
        "unsubscribe_issue",
    ]


def _subscriptions_matching(request) -> Q:
    """Return the condition on a subscriber's subscriptions that the list, status and source filters ask for."""
    condition = Q(subscriber=OuterRef("pk"))
    if request.GET.get("list"):
        condition &= Q(mailing_list_id=request.GET["list"])
    if request.GET.get("status"):
        condition &= Q(status=request.GET["status"])
    if request.GET.get("source"):
        condition &= Q(consent_source=request.GET["source"])
    return condition


class _SubscriptionFilter(admin.SimpleListFilter):
    """One of the filters on subscriptions; together they describe one subscription."""

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        return queryset.filter(Exists(Subscription.objects.filter(_subscriptions_matching(request))))


class ListFilter(_SubscriptionFilter):
    title = "list"
    parameter_name = "list"

    def lookups(self, request, model_admin):
        return [(str(pk), name) for pk, name in MailingList.objects.values_list("pk", "name")]


class StatusFilter(_SubscriptionFilter):
    title = "subscription status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return Subscription.Status.choices


class SourceFilter(_SubscriptionFilter):
    title = "consent source"
    parameter_name = "source"

    def lookups(self, request, model_admin):
        return Subscription.ConsentSource.choices


@admin.register(Subscriber)
class SubscriberAdmin(ScalableAdmin):
    list_display = ["email", "name", "created_at"]
    search_fields = ["email", "name"]
    search_help_text = "The start of an address or of a name, e.g. “ann@” or “Ann”."
    list_filter = [ListFilter, StatusFilter, SourceFilter, ("created_at", admin.DateFieldListFilter)]
    date_hierarchy = None
    inlines = [SubscriptionInline]
    actions = ["unsubscribe_all", "resend_confirmation", "erase"]
    ordering = ["-id"]
    audit_created = AuditEntry.Action.SUBSCRIBER_ADDED
    audit_changed = AuditEntry.Action.SUBSCRIBER_CHANGED
    audit_deleted = AuditEntry.Action.SUBSCRIBER_DELETED

    def audit_summary(self, obj) -> str:
        return f"subscriber {obj.pk}"  # never the address: the trail outlives an erasure

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip().lower()
        if not term:
            return queryset, False
        # LIKE 'prefix%' on lower(column): served by the pattern indexes
        # migration 0003 adds on PostgreSQL. A contains-search would read
        # every row.
        condition = Q(email_lower__startswith=term)
        if "@" not in term:
            condition |= Q(name_lower__startswith=term)
        queryset = queryset.annotate(email_lower=Lower("email"), name_lower=Lower("name")).filter(condition)
        return queryset, False

    # Each action on many readers runs as one staff job, in bounded batches
    # with a progress page, not as work in this request.
    def _bulk(self, request, queryset, kind: str):
        ids = list(queryset.values_list("pk", flat=True))
        job = staff_job_bulk_create(kind=kind, subscriber_ids=ids, user=request.user)
        self.message_user(
            request, f"{job.get_kind_display()}: {len(ids)} readers, in the background.", messages.SUCCESS
        )
        return redirect("staff:job", job_id=job.pk)

    @admin.action(description="Unsubscribe from every list", permissions=["change"])
    def unsubscribe_all(self, request, queryset):
        return self._bulk(request, queryset, StaffJob.Kind.UNSUBSCRIBE)

    @admin.action(description="Resend the confirmation mail (pending subscriptions)", permissions=["change"])
    def resend_confirmation(self, request, queryset):
        return self._bulk(request, queryset, StaffJob.Kind.RESEND)

    @admin.action(description="Erase (delete everything, keep only a suppression hash)", permissions=["delete"])
    def erase(self, request, queryset):
        return self._bulk(request, queryset, StaffJob.Kind.ERASE)


@admin.register(Subscription)
class SubscriptionAdmin(ScalableAdmin):
    list_display = [
        "subscriber",
        "mailing_list",
        "status",
        "consent_source",
        "confirmed_at",
        "unsubscribed_at",
        "unsubscribe_source",
    ]
    list_filter = ["mailing_list", "status", "consent_source", "unsubscribe_source"]
    search_fields = ["subscriber__email"]
    search_help_text = "The start of an address."
    raw_id_fields = ["subscriber", "unsubscribe_issue"]
    list_select_related = ["subscriber", "mailing_list"]
    ordering = ["-id"]
    audit_created = AuditEntry.Action.SUBSCRIBER_ADDED
    audit_changed = AuditEntry.Action.SUBSCRIBER_CHANGED
    audit_deleted = AuditEntry.Action.SUBSCRIBER_CHANGED
    audit_roles_fields = ("status",)  # a status set by hand: unsubscribed, or active again
    audit_roles_changed = AuditEntry.Action.SUBSCRIBER_UNSUBSCRIBED

    def audit_summary(self, obj) -> str:
        return f"subscriber {obj.subscriber_id} on list {obj.mailing_list_id}: {obj.status}"

    def save_related(self, request, form, formsets, change):
        if change and "status" in form.changed_data and form.instance.status != Subscription.Status.UNSUBSCRIBED:
            form.changed_data.remove("status")  # recorded as a change, not as an unsubscribe
            form.changed_data.append("status set by hand")
        super().save_related(request, form, formsets, change)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip().lower()
        if not term:
            return queryset, False
        matching = Subscriber.objects.annotate(email_lower=Lower("email")).filter(email_lower__startswith=term)
        return queryset.filter(subscriber__in=matching.values("pk")), False


@admin.register(Suppression)
class SuppressionAdmin(ScalableAdmin):
    list_display = ["__str__", "reason", "note", "created_at"]
    list_filter = ["reason", "created_at"]
    search_fields = ["email"]
    search_help_text = "A whole address; erased addresses are found by their hash."
    fields = ["email", "reason", "note", "created_at"]
    readonly_fields = ["created_at"]
    audit_created = AuditEntry.Action.SUBSCRIBER_SUPPRESSED
    audit_changed = AuditEntry.Action.SUBSCRIBER_SUPPRESSED
    audit_deleted = AuditEntry.Action.SUBSCRIBER_UNSUPPRESSED

    def audit_summary(self, obj) -> str:
        return f"suppression {obj.pk} ({obj.get_reason_display().lower()})"

    def get_readonly_fields(self, request, obj=None):
        # The hash is the row's identity: an existing entry's address cannot change.
        return ["email", "created_at"] if obj else ["created_at"]

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(Q(email_hash__in=email_hashes(term)) | Q(email__iexact=term)), False

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["reason", "note"])
            return
        email = email_normalize(obj.email)
        existing = suppression_find(email=email)
        saved = suppression_add(email=email, reason=obj.reason, note=obj.note)
        obj.pk = saved.pk
        if existing:
            messages.info(request, "That address was already suppressed; its first reason is kept.")

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if obj is None and "email" in form.base_fields:
            field = form.base_fields["email"]
            field.required = True
            field.help_text = "Never mailed again, and skipped by imports."
            field.validators.append(_address_valid)
            form.base_fields["note"].help_text = "Why, for the next admin."
        return form


def _address_valid(value: str) -> None:
    email_normalize(value)


@admin.register(ImportJob)
class ImportJobAdmin(ScalableAdmin):
    list_display = ["__str__", "mailing_list", "status", "processed_rows", "imported_count", "bad_count", "created_at"]
    list_filter = ["status", "mailing_list"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def audit_summary(self, obj) -> str:
        return f"import {obj.pk}"

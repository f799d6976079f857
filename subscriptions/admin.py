from django.contrib import admin

from subscriptions.models import MailingList, Subscriber, Subscription, Suppression


@admin.register(MailingList)
class MailingListAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "from_email", "is_public", "archive_enabled", "tracking_enabled"]
    list_filter = ["is_public", "archive_enabled", "tracking_enabled", "double_opt_in"]
    search_fields = ["name", "slug", "from_email"]
    prepopulated_fields = {"slug": ["name"]}


class SubscriptionInline(admin.TabularInline):
    model = Subscription
    extra = 0
    raw_id_fields = ["unsubscribe_issue"]
    fields = [
        "mailing_list",
        "status",
        "consent_source",
        "consented_at",
        "confirmed_at",
        "unsubscribed_at",
        "unsubscribe_source",
        "unsubscribe_issue",
    ]


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):
    list_display = ["email", "name", "created_at"]
    search_fields = ["email", "name"]
    list_filter = ["subscriptions__mailing_list", "subscriptions__status", "created_at"]
    inlines = [SubscriptionInline]
    show_full_result_count = False


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
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
    search_fields = ["subscriber__email", "subscriber__name"]
    raw_id_fields = ["subscriber", "unsubscribe_issue"]
    list_select_related = ["subscriber", "mailing_list"]
    show_full_result_count = False


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "reason", "created_at"]
    list_filter = ["reason", "created_at"]
    search_fields = ["email", "note"]
    raw_id_fields = ["event"]
    readonly_fields = ["email_hash"]

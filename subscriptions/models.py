from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

EMAIL_MAX_LENGTH = 254
NAME_MAX_LENGTH = 200


class MailingList(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    description = models.TextField(blank=True)
    from_name = models.CharField(max_length=200)
    from_email = models.EmailField(max_length=EMAIL_MAX_LENGTH)
    reply_to = models.EmailField(max_length=EMAIL_MAX_LENGTH, blank=True)
    footer_text = models.TextField(blank=True, help_text="Added to every issue, e.g. a contact address.")
    is_public = models.BooleanField(default=True, help_text="Shown on the site with a subscribe form.")
    archive_enabled = models.BooleanField(default=True, help_text="Past issues readable on the web.")
    tracking_enabled = models.BooleanField(default=False, help_text="Record opens and clicks.")
    double_opt_in = models.BooleanField(default=True, help_text="New readers confirm by email first.")
    send_welcome = models.BooleanField(default=False, help_text="Mail a welcome once confirmed.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=~Q(slug=""), name="mailinglist_slug_not_empty"),
        ]

    def __str__(self) -> str:
        return self.name


class Subscriber(models.Model):
    # Stored as validated and normalised (domain lower-cased); unique
    # regardless of the letter case of the local part.
    email = models.EmailField(max_length=EMAIL_MAX_LENGTH)
    name = models.CharField(max_length=NAME_MAX_LENGTH, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(Lower("email"), name="subscriber_email_ci_unique"),
            models.CheckConstraint(condition=~Q(email=""), name="subscriber_email_not_empty"),
        ]

    def __str__(self) -> str:
        return self.email


class Subscription(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending confirmation"
        ACTIVE = "active", "Active"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"

    class ConsentSource(models.TextChoices):
        FORM = "form", "Web form"
        IMPORT = "import", "Import"
        ADMIN = "admin", "Added by an admin"

    class UnsubscribeSource(models.TextChoices):
        LINK = "link", "Unsubscribe link"
        ONE_CLICK = "one_click", "One-click (RFC 8058)"
        MAILTO = "mailto", "Mail to the unsubscribe address"
        PREFERENCES = "preferences", "Preference centre"
        ESP = "esp", "Email provider"
        COMPLAINT = "complaint", "Spam complaint"
        BOUNCE = "bounce", "Bounce"
        ADMIN = "admin", "Admin"

    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="subscriptions")
    mailing_list = models.ForeignKey(MailingList, on_delete=models.CASCADE, related_name="subscriptions")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)

    # The consent record.
    consent_source = models.CharField(max_length=16, choices=ConsentSource.choices)
    consented_at = models.DateTimeField(default=timezone.now)
    consent_detail = models.CharField(
        max_length=300, blank=True, help_text="Where consent came from: client address, import file, admin."
    )
    confirmed_at = models.DateTimeField(null=True, blank=True)

    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    unsubscribe_source = models.CharField(max_length=16, choices=UnsubscribeSource.choices, blank=True)
    unsubscribe_issue = models.ForeignKey(
        "issues.Issue", null=True, blank=True, on_delete=models.SET_NULL, related_name="unsubscriptions"
    )

    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subscriber", "mailing_list"], name="subscription_unique"),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "active", "unsubscribed"]), name="subscription_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status="active") | Q(confirmed_at__isnull=False),
                name="subscription_active_is_confirmed",
            ),
            models.CheckConstraint(
                condition=~Q(status="unsubscribed") | (Q(unsubscribed_at__isnull=False) & ~Q(unsubscribe_source="")),
                name="subscription_unsubscribed_has_when_and_how",
            ),
        ]
        indexes = [
            models.Index(fields=["mailing_list", "status"], name="subscription_list_status"),
            models.Index(fields=["status", "unsubscribed_at"], name="subscription_unsub_when"),
        ]

    def __str__(self) -> str:
        return f"{self.subscriber_id} on {self.mailing_list_id}: {self.status}"


class Suppression(models.Model):
    """An address that must never be mailed again.

    Keyed by an HMAC of the normalised, lower-cased address so that an
    erased reader can stay suppressed without us keeping their address.
    """

    class Reason(models.TextChoices):
        HARD_BOUNCE = "hard_bounce", "Hard bounce"
        SOFT_BOUNCES = "soft_bounces", "Repeated soft bounces"
        COMPLAINT = "complaint", "Spam complaint"
        REJECTED = "rejected", "Rejected by the provider"
        ERASED = "erased", "Reader asked to be erased"
        MANUAL = "manual", "Added by an admin"

    email_hash = models.CharField(max_length=64, unique=True)
    email = models.EmailField(max_length=EMAIL_MAX_LENGTH, blank=True, help_text="Blank once erased.")
    reason = models.CharField(max_length=16, choices=Reason.choices)
    note = models.CharField(max_length=500, blank=True)
    event = models.ForeignKey(
        "issues.DeliveryEvent", null=True, blank=True, on_delete=models.SET_NULL, related_name="suppressions"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.email or f"(erased) {self.email_hash[:12]}"

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from subscriptions.models import EMAIL_MAX_LENGTH, MailingList, Subscriber

MAX_BODY_LENGTH = 1_000_000


class Issue(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SCHEDULED = "scheduled", "Scheduled"
        SENDING = "sending", "Sending"
        PAUSED = "paused", "Paused"
        SENT = "sent", "Sent"
        CANCELLED = "cancelled", "Cancelled"

    lists = models.ManyToManyField(MailingList, related_name="issues")
    title = models.CharField(max_length=300)
    subtitle = models.CharField(max_length=300, blank=True)
    byline = models.CharField(max_length=200, blank=True)
    preheader = models.CharField(
        max_length=200, blank=True, help_text="The line mail programs show after the subject in the inbox."
    )
    body = models.TextField(help_text="Plain text or Markdown.")
    slug = models.SlugField(max_length=120, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT, db_index=True)
    scheduled_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="issues"
    )

    # The frozen snapshot, rendered once when sending starts; what readers
    # received and what the archive shows afterwards.
    snapshot_subject = models.CharField(max_length=300, blank=True)
    snapshot_html = models.TextField(blank=True)
    snapshot_text = models.TextField(blank=True)
    snapshot_at = models.DateTimeField(null=True, blank=True)

    # The ledger is written in chunks while the first batches go out. The
    # id bounds let workers claim batches by id range; an issue is finished
    # only once its whole ledger is written.
    ledger_id_min = models.BigIntegerField(null=True, blank=True)
    ledger_id_max = models.BigIntegerField(null=True, blank=True)
    ledger_written_at = models.DateTimeField(null=True, blank=True)

    # An issue that was mailed cannot be deleted (its ledger is the record of
    # who got what); an admin can take it out of the public archive instead.
    archive_hidden_at = models.DateTimeField(null=True, blank=True)
    archive_hidden_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["draft", "scheduled", "sending", "paused", "sent", "cancelled"]),
                name="issue_status_valid",
            ),
            models.CheckConstraint(
                condition=~Q(status="scheduled") | Q(scheduled_at__isnull=False),
                name="issue_scheduled_has_time",
            ),
            models.CheckConstraint(condition=~Q(status="sent") | Q(sent_at__isnull=False), name="issue_sent_has_time"),
            models.CheckConstraint(condition=~Q(title=""), name="issue_title_not_empty"),
        ]

    def __str__(self) -> str:
        return self.title


class Delivery(models.Model):
    """One row per issue and reader: the ledger of who got what."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to be sent"
        CLAIMED = "claimed", "Being sent by a worker"
        DEFERRED = "deferred", "Waiting to be retried"
        SENT = "sent", "Accepted by the provider"
        DELIVERED = "delivered", "Delivered"
        BOUNCED = "bounced", "Bounced"
        COMPLAINED = "complained", "Complained"
        FAILED = "failed", "Failed permanently"
        SKIPPED = "skipped", "Skipped (unsubscribed or suppressed before sending)"
        CANCELLED = "cancelled", "Cancelled with the issue"

    # The ledger is written a million rows at a time and each row is then
    # updated twice (claimed, sent): every index and per-row trigger here
    # costs seconds. No database-level foreign keys (Django cascades and
    # nulls in Python), and no index on a column those updates change
    # (status, claim, message id), so PostgreSQL updates the rows in place
    # (HOT) in the free space the table's fillfactor leaves in each page.
    # Batches are found by id range; provider message ids by SentMessage.
    issue = models.ForeignKey(
        Issue, on_delete=models.CASCADE, related_name="deliveries", db_index=False, db_constraint=False
    )
    # Kept when a reader is erased (with the address blanked) so the issue's
    # figures still add up.
    subscriber = models.ForeignKey(
        Subscriber, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries", db_constraint=False
    )
    # The list this reader gets the issue through (the first of the issue's
    # lists they are on); its unsubscribe link and List-Id go in their copy.
    mailing_list = models.ForeignKey(
        MailingList,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="deliveries",
        db_index=False,
        db_constraint=False,
    )
    email = models.EmailField(max_length=EMAIL_MAX_LENGTH, blank=True, help_text="The address used.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    provider_message_id = models.CharField(max_length=255, blank=True)

    class Failure(models.TextChoices):
        PERMANENT = "permanent", "Permanent (sending again would fail again)"
        TRANSIENT = "transient", "Temporary (gave up after retries; may succeed later)"

    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    # For a failed row: whether sending again could help. Only temporary
    # failures are offered for a retry. A database default, since the ledger
    # is written by INSERT ... SELECT naming its columns.
    failure_kind = models.CharField(max_length=16, choices=Failure.choices, blank=True, default="", db_default="")
    claim_token = models.CharField(max_length=64, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # Set when the row was taken back from a worker that stopped mid-batch:
    # that copy may have reached the reader before the worker died.
    reclaimed_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(fields=["issue", "subscriber"], name="delivery_unique_per_issue_subscriber"),
            models.CheckConstraint(
                condition=Q(
                    status__in=[
                        "pending",
                        "claimed",
                        "deferred",
                        "sent",
                        "delivered",
                        "bounced",
                        "complained",
                        "failed",
                        "skipped",
                        "cancelled",
                    ]
                ),
                name="delivery_status_valid",
            ),
            models.CheckConstraint(
                condition=~Q(status="claimed") | (Q(claimed_at__isnull=False) & ~Q(claim_token="")),
                name="delivery_claim_has_owner",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=["sent", "delivered", "bounced", "complained"]) | Q(sent_at__isnull=False),
                name="delivery_sent_has_time",
            ),
        ]
        indexes = [
            # The report's failures, their reasons and the retry count read
            # only the readers a copy did not reach: a few rows of a million.
            models.Index(
                fields=["issue", "status"],
                condition=Q(status__in=["failed", "bounced", "complained"]),
                name="delivery_failures",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.issue_id} → {self.email or self.subscriber_id}: {self.status}"


class SentMessage(models.Model):
    """A message id the provider (or our SMTP path) gave, and the ledger rows it covers.

    A batch API answers one id for the whole batch: that is one row here
    naming the range of delivery ids in it, and an event about it is
    matched to a reader by the recipient address within that range.
    """

    provider_message_id = models.CharField(max_length=255, db_index=True)
    issue_id = models.BigIntegerField()
    first_delivery_id = models.BigIntegerField()
    last_delivery_id = models.BigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.provider_message_id


class DeliveryEvent(models.Model):
    """A provider's report about a message, normalised, stored once."""

    provider = models.CharField(max_length=40)
    event_id = models.CharField(max_length=255)
    event_type = models.CharField(max_length=40)
    # No database-level constraint, as on the ledger itself: its deferred
    # check would lock each ledger row an event names at commit, a thousand
    # per SendGrid post (Django still nulls the link when a row is deleted).
    delivery = models.ForeignKey(
        Delivery, null=True, blank=True, on_delete=models.SET_NULL, related_name="events", db_constraint=False
    )
    recipient = models.EmailField(max_length=EMAIL_MAX_LENGTH, blank=True)
    message_id = models.CharField(max_length=255, blank=True)
    reject_reason = models.CharField(max_length=100, blank=True)
    description = models.TextField(blank=True)
    occurred_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    # Set in the transaction that applies the event's effects; events left
    # unapplied (their queued task lost) are found by the sweep.
    applied_at = models.DateTimeField(null=True, blank=True)
    payload = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_id"], name="deliveryevent_unique_per_provider"),
        ]
        # Ten million rows and more: the admin lists them newest first (by
        # id) filtered by kind, and finds them by address (lower-cased, as
        # erasing a reader does) or by the provider's ids. (One provider
        # sends for a whole site, so its name needs no index of its own.)
        indexes = [
            models.Index(fields=["received_at"], condition=Q(applied_at__isnull=True), name="deliveryevent_unapplied"),
            # Erasing a reader finds the events that name their address without a scan.
            models.Index(Lower("recipient"), name="deliveryevent_recipient_lower"),
            models.Index(fields=["event_type", "-id"], name="deliveryevent_type_newest"),
            models.Index(fields=["message_id"], name="deliveryevent_message_id"),
            models.Index(fields=["event_id"], name="deliveryevent_event_id_prefix", opclasses=["varchar_pattern_ops"]),
            # The admin's date filters, newest first by date (DeliveryEventAdmin.get_ordering).
            models.Index(fields=["received_at", "id"], name="deliveryevent_received"),
            # An issue's report counts its bounces, deferrals and complaints
            # (issues.selectors.FEEDBACK_TYPES) and lists the newest: found by
            # the issue's deliveries and read from this index alone, a few
            # percent of the table.
            models.Index(
                fields=["delivery"],
                include=["event_type", "provider", "id"],
                condition=Q(event_type__in=["bounced", "soft_bounced", "deferred", "complained"]),
                name="deliveryevent_feedback",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.event_type} {self.recipient}"


class Comment(models.Model):
    """A reader's reply to an issue, received through the provider's inbound webhook."""

    class Status(models.TextChoices):
        UNHANDLED = "unhandled", "Unhandled"
        HANDLED = "handled", "Handled"

    provider = models.CharField(max_length=40)
    # The provider's id for the inbound mail, else one derived from the mail
    # itself, so that a replayed webhook stores nothing new.
    event_id = models.CharField(max_length=255)
    issue = models.ForeignKey(Issue, null=True, blank=True, on_delete=models.SET_NULL, related_name="comments")
    # The list it was written to: the issue's it answers, or the one whose contact address it reached.
    mailing_list = models.ForeignKey(
        MailingList, null=True, blank=True, on_delete=models.SET_NULL, related_name="comments"
    )
    subscriber = models.ForeignKey(
        Subscriber, null=True, blank=True, on_delete=models.SET_NULL, related_name="comments"
    )
    sender_email = models.EmailField(max_length=EMAIL_MAX_LENGTH)
    sender_name = models.CharField(max_length=200, blank=True)
    subject = models.CharField(max_length=300, blank=True)
    message_id = models.CharField(max_length=255, blank=True)
    text = models.TextField(blank=True)
    html = models.TextField(blank=True, help_text="Sanitised; kept only when the mail had no text part.")
    truncated = models.BooleanField(default=False)
    attachments_dropped = models.PositiveSmallIntegerField(default=0)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UNHANDLED)
    handled_at = models.DateTimeField(null=True, blank=True)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    answer_text = models.TextField(blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    answered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    # Published as a letter in the archive only with the writer's consent,
    # which the editor records (when and who) before publishing.
    published = models.BooleanField(default=False)
    published_at = models.DateTimeField(null=True, blank=True)
    consent_at = models.DateTimeField(null=True, blank=True)
    consent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_id"], name="comment_unique_per_provider"),
            models.CheckConstraint(condition=Q(status__in=["unhandled", "handled"]), name="comment_status_valid"),
            models.CheckConstraint(
                condition=Q(published=False) | (Q(consent_at__isnull=False) & Q(issue__isnull=False)),
                name="comment_published_has_consent",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "received_at"], name="comment_status_received"),
            models.Index(fields=["issue", "published"], name="comment_issue_published"),
        ]

    def __str__(self) -> str:
        return f"{self.sender_email}: {self.subject}"


class UnparsedBounce(models.Model):
    """A mail that came back to the bounce address and could not be read: kept for an admin, never dropped."""

    source = models.CharField(max_length=16, help_text="How it arrived: imap, pop3, pipe or http.")
    digest = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the raw mail: stored once.")
    sender = models.CharField(max_length=300, blank=True)
    subject = models.CharField(max_length=300, blank=True)
    message_id = models.CharField(max_length=255, blank=True)
    size = models.PositiveIntegerField(default=0)
    raw = models.BinaryField(help_text="The mail as received (cut at BOUNCE_MESSAGE_MAX_BYTES).")
    reason = models.CharField(max_length=300, blank=True)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    handled = models.BooleanField(default=False)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.sender}: {self.subject}"

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator, URLValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

EMAIL_MAX_LENGTH = 254
DEFAULT_ACCENT = "#9b1c1c"
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
    # The masthead at the top of every issue mail: the logo if given, else the list's name.
    logo_url = models.URLField(
        max_length=500,
        blank=True,
        validators=[URLValidator(schemes=["https", "http"])],
        help_text="An https:// address of a logo image for the top of every issue (about 600 by 120 pixels). "
        "Leave empty to show the list's name.",
    )
    accent_colour = models.CharField(
        max_length=7,
        default=DEFAULT_ACCENT,
        validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$", "Give a colour as # and six hex digits, e.g. #9b1c1c.")],
        help_text="Links and the masthead's rule in the mail, as #rrggbb.",
    )
    contact_email = models.EmailField(
        max_length=EMAIL_MAX_LENGTH,
        blank=True,
        help_text="The address readers write to (comments, 'please add me'); the reply-to address when blank.",
    )
    subscribe_by_mail = models.BooleanField(
        default=False,
        help_text="Say in every issue's footer and on the archive pages that readers can subscribe by writing "
        "to the list's +subscribe address.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=~Q(slug=""), name="mailinglist_slug_not_empty"),
            models.CheckConstraint(
                condition=Q(accent_colour__regex=r"^#[0-9a-fA-F]{6}$"), name="mailinglist_accent_colour_hex"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def command_address(self, command: str) -> str:
        """Return the list's address for a mail command: its sender address with +command (+subscribe, +help)."""
        local, _, domain = self.from_email.partition("@")
        return f"{local}+{command}@{domain}"

    @property
    def subscribe_address(self) -> str:
        """Return the address that starts a subscription by mail."""
        return self.command_address("subscribe")


class Subscriber(models.Model):
    # Stored as validated and normalised (domain lower-cased); unique
    # regardless of the letter case of the local part.
    email = models.EmailField(max_length=EMAIL_MAX_LENGTH)
    name = models.CharField(max_length=NAME_MAX_LENGTH, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        # The subscribers screen, read-only: search readers and read their pages (dwvlist.access.READERS).
        permissions = [("browse_subscriber", "Can search readers and read their pages")]
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
        EMAIL = "email", "Asked by email"
        API = "api", "Added through the API"

    class UnsubscribeSource(models.TextChoices):
        LINK = "link", "Unsubscribe link"
        ONE_CLICK = "one_click", "One-click (RFC 8058)"
        MAILTO = "mailto", "Mail to the unsubscribe address"
        PREFERENCES = "preferences", "Preference centre"
        ESP = "esp", "Email provider"
        COMPLAINT = "complaint", "Spam complaint"
        BOUNCE = "bounce", "Bounce"
        ADMIN = "admin", "Admin"
        API = "api", "Through the API"

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
            # The dashboard's weekly figures read bounded windows of these.
            models.Index(fields=["created_at"], name="subscription_created"),
            models.Index(fields=["confirmed_at"], name="subscription_confirmed"),
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


class ImportJob(models.Model):
    """A CSV import, run by a Celery task in chunks that each commit with their progress.

    processed_rows counts data rows already handled (committed with the
    chunk that handled them), so a crashed import resumes after them.
    """

    class Consent(models.TextChoices):
        GIVEN = "given", "Consent already given: subscribe at once"
        CONFIRM = "confirm", "Send a confirmation email first"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    mailing_list = models.ForeignKey(MailingList, on_delete=models.CASCADE, related_name="import_jobs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="import_jobs"
    )
    file_name = models.CharField(max_length=255, help_text="The uploaded file's name, recorded as consent detail.")
    file_path = models.CharField(
        max_length=1000, blank=True, help_text="A local file read where it is (manage.py import_subscribers)."
    )
    stored_name = models.CharField(
        max_length=255, blank=True, help_text="The uploaded file in the file storage, which every worker reads."
    )
    file_size = models.PositiveBigIntegerField(default=0)
    consent = models.CharField(max_length=16, choices=Consent.choices)
    email_column = models.CharField(max_length=200, default="email")
    name_column = models.CharField(max_length=200, blank=True)
    lists_column = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True)

    total_rows = models.PositiveIntegerField(null=True, blank=True)
    processed_rows = models.PositiveIntegerField(default=0)
    new_subscribers = models.PositiveIntegerField(default=0)
    imported_count = models.PositiveIntegerField(default=0, help_text="Subscriptions created.")
    existing_count = models.PositiveIntegerField(default=0, help_text="Already subscribed or pending: left as is.")
    unsubscribed_count = models.PositiveIntegerField(default=0, help_text="Had unsubscribed: not re-subscribed.")
    suppressed_count = models.PositiveIntegerField(default=0, help_text="Suppressed or erased: skipped.")
    duplicate_count = models.PositiveIntegerField(default=0, help_text="Repeated within the file: skipped.")
    bad_count = models.PositiveIntegerField(default=0)
    confirmations_queued = models.PositiveIntegerField(default=0)

    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    # The last sign of life: a worker taking the job, or a chunk committed. An
    # import still queued or running long after it is resumed by beat.
    progressed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(consent__in=["given", "confirm"]), name="importjob_consent_valid"),
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running", "done", "failed"]), name="importjob_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"Import #{self.pk} of {self.file_name}"

    @property
    def consent_detail(self) -> str:
        return f"CSV import #{self.pk}: {self.file_name}"[:300]

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        if not self.total_rows:
            return 0
        return min(100, int(self.processed_rows * 100 / self.total_rows))


class ImportRowError(models.Model):
    """A row of an import that was not imported, and why."""

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="row_errors")
    row_number = models.PositiveIntegerField(help_text="The line in the file, the header being line 1.")
    value = models.CharField(max_length=300, blank=True, help_text="The address as written, cut short.")
    reason = models.CharField(max_length=300)

    class Meta:
        ordering = ["job", "row_number"]
        constraints = [
            models.UniqueConstraint(fields=["job", "row_number"], name="importrowerror_unique_row"),
        ]

    def __str__(self) -> str:
        return f"row {self.row_number}: {self.reason}"


class StoredFile(models.Model):
    """A file kept in the database (the default file storage): imports waiting, exports to download.

    In the database, every web process and worker on any host reads the
    same file with nothing to share or mount.
    """

    name = models.CharField(max_length=255, unique=True)
    size = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name


class StoredFileChunk(models.Model):
    """One piece of a stored file, in order."""

    file = models.ForeignKey(StoredFile, on_delete=models.CASCADE, related_name="chunks")
    seq = models.PositiveIntegerField()
    data = models.BinaryField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["file", "seq"], name="storedfilechunk_unique_seq")]

    def __str__(self) -> str:
        return f"{self.file_id}:{self.seq}"


class StaffJob(models.Model):
    """Staff work too big for one web request: an export, or a bulk action on many readers.

    A worker runs it in bounded batches, recording progress as it goes; a job
    whose worker went away is marked failed and can be started again.
    """

    class Kind(models.TextChoices):
        EXPORT = "export", "Export subscribers"
        ERASE = "erase", "Erase readers"
        UNSUBSCRIBE = "unsubscribe", "Unsubscribe readers from every list"
        RESEND = "resend", "Resend confirmation mails"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="staff_jobs"
    )
    # What to work on: an export's filters, or the readers of a bulk action.
    mailing_list = models.ForeignKey(MailingList, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    subscription_status = models.CharField(max_length=16, blank=True)
    subscriber_ids = models.JSONField(default=list, blank=True)
    # Each run takes the job with a fresh token; only that run may record its end.
    run_token = models.CharField(max_length=32, blank=True)

    total = models.PositiveIntegerField(null=True, blank=True)
    processed = models.PositiveIntegerField(default=0)
    changed = models.PositiveIntegerField(default=0, help_text="Readers erased, unsubscribed or mailed.")
    error = models.TextField(blank=True)
    # The finished export: where it is kept, and what lets its reader check it is whole.
    file_name = models.CharField(max_length=255, blank=True)
    stored_name = models.CharField(max_length=255, blank=True)
    file_size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)

    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    progressed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=["export", "erase", "unsubscribe", "resend"]), name="staffjob_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running", "done", "failed"]), name="staffjob_status_valid"
            ),
            # An export is offered for download only when it is whole.
            models.CheckConstraint(
                condition=~Q(kind="export", status="done") | (~Q(stored_name="") & ~Q(sha256="")),
                name="staffjob_done_export_has_file",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        if not self.total:
            return 0
        return min(100, int(self.processed * 100 / self.total))

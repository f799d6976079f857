"""API tokens and the answers kept for idempotent retries."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

# What a token may be used for; each call also needs its user's permission.
SCOPES = {
    "subscribers:read": "Read lists, subscribers and suppressions.",
    "subscribers:write": "Add, change, unsubscribe and erase subscribers; manage lists and suppressions.",
    "issues:read": "Read issues and preview them.",
    "issues:write": "Create and change draft issues.",
    "issues:send": "Send tests, schedule, send, pause, resume and cancel issues.",
    "reports:read": "Read sending progress, reports, failures and provider events.",
}
PREFIX_LENGTH = 8


class ApiToken(models.Model):
    """A bearer token: `dwv_<prefix>_<secret>`, of which only the prefix and a SHA-256 are kept."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What uses it, e.g. “signup form on the website”.")
    prefix = models.CharField(max_length=PREFIX_LENGTH, unique=True)
    secret_hash = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.CheckConstraint(condition=~Q(name=""), name="apitoken_name_not_empty")]

    def __str__(self) -> str:
        return f"{self.name} (dwv_{self.prefix}_…)"

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class IdempotencyRecord(models.Model):
    """The first answer to a POST carrying an Idempotency-Key, replayed for repeats.

    status_code 0 marks a request still being handled.
    """

    token = models.ForeignKey(ApiToken, on_delete=models.CASCADE, related_name="idempotency_records")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the method, path and body.")
    status_code = models.PositiveSmallIntegerField(default=0)
    content_type = models.CharField(max_length=100, blank=True)
    body = models.BinaryField(blank=True, default=b"")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["token", "key"], name="idempotency_unique_per_token")]

    def __str__(self) -> str:
        return f"{self.token_id}:{self.key} → {self.status_code}"

"""The editor's forms: compose an issue, send a test, pick a send time."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from issues.models import MAX_BODY_LENGTH, Issue
from subscriptions.addresses import email_normalize
from subscriptions.models import MailingList

MAX_TEST_ADDRESSES = 10

_DATETIME_FORMAT = "%Y-%m-%dT%H:%M"


def _refuse_line_breaks(value: str, label: str) -> str:
    # These end up in mail headers (the subject) or next to them.
    if "\r" in value or "\n" in value:
        raise ValidationError(f"The {label} must be a single line, without line breaks.", code="line_break")
    return value.strip()


def _refuse_past(value):
    if value is not None and value <= timezone.now():
        raise ValidationError("The send time must be in the future.", code="past")
    return value


class SendTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, **kwargs):
        super().__init__(format=_DATETIME_FORMAT, **kwargs)


class IssueForm(forms.ModelForm):
    title = forms.CharField(max_length=300, strip=False)
    subtitle = forms.CharField(max_length=300, required=False, strip=False)
    byline = forms.CharField(max_length=200, required=False, strip=False, help_text="For example: By Jane Doe.")
    preheader = forms.CharField(
        max_length=200,
        required=False,
        strip=False,
        label="Preheader (optional)",
        help_text="The line mail programs show after the subject in the inbox. Empty: they show the first words.",
    )
    body = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 24}),
        strip=False,
        help_text="Plain text or Markdown. Blank lines separate paragraphs; URLs become links; *emphasis* works.",
    )
    lists = forms.ModelMultipleChoiceField(
        queryset=MailingList.objects.order_by("name"),
        widget=forms.CheckboxSelectMultiple,
        help_text="A reader on several of these lists gets one copy.",
    )
    scheduled_at = forms.DateTimeField(
        label="Send time (optional)",
        required=False,
        widget=SendTimeInput(),
        input_formats=[_DATETIME_FORMAT, "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"],
        help_text="Leave empty to send by hand. You confirm the schedule on the next page.",
    )

    class Meta:
        model = Issue
        fields = ["title", "subtitle", "byline", "preheader", "body", "lists", "scheduled_at"]

    def clean_title(self):
        title = _refuse_line_breaks(self.cleaned_data["title"], "title")
        if not title:
            raise ValidationError("Enter a title.", code="required")
        return title

    def clean_subtitle(self):
        return _refuse_line_breaks(self.cleaned_data["subtitle"], "subtitle")

    def clean_byline(self):
        return _refuse_line_breaks(self.cleaned_data["byline"], "byline")

    def clean_preheader(self):
        return _refuse_line_breaks(self.cleaned_data["preheader"], "preheader")

    def clean_body(self):
        body = self.cleaned_data["body"]
        if len(body) > MAX_BODY_LENGTH:
            raise ValidationError(
                f"The body is too long: {len(body):,} characters, the most is {MAX_BODY_LENGTH:,} (1 MB). "
                "Split the article into several issues.",
                code="too_long",
            )
        if not body.strip():
            raise ValidationError("Enter the body of the issue.", code="required")
        return body

    def clean_scheduled_at(self):
        return _refuse_past(self.cleaned_data["scheduled_at"])


class TestSendForm(forms.Form):
    addresses = forms.CharField(
        label="Send a test to",
        max_length=3000,
        help_text=f"Up to {MAX_TEST_ADDRESSES} addresses, separated by commas or new lines.",
        widget=forms.TextInput(attrs={"autocomplete": "email"}),
    )

    def clean_addresses(self) -> list[str]:
        raw = self.cleaned_data["addresses"].replace("\r", "\n")
        candidates = [part.strip() for chunk in raw.split("\n") for part in chunk.split(",")]
        candidates = [c for c in candidates if c]
        if not candidates:
            raise ValidationError("Enter at least one address.", code="required")
        if len(candidates) > MAX_TEST_ADDRESSES:
            raise ValidationError(f"At most {MAX_TEST_ADDRESSES} addresses at a time.", code="too_many")
        addresses: list[str] = []
        for candidate in candidates:
            try:
                address = email_normalize(candidate)
            except ValidationError as exc:
                raise ValidationError(f"{candidate[:80]}: {exc.messages[0]}", code="invalid") from None
            if address not in addresses:
                addresses.append(address)
        return addresses


class ScheduleForm(forms.Form):
    when = forms.DateTimeField(
        label="Send at",
        widget=SendTimeInput(),
        input_formats=[_DATETIME_FORMAT, "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"],
        help_text="In the site's time zone.",
    )

    def clean_when(self):
        return _refuse_past(self.cleaned_data["when"])


class DraftForm(IssueForm):
    """What the compose page sends while the editor types: saved as a draft, or previewed.

    Only a title is needed; lists and body may still be missing. The send
    time is confirmed only through the normal save.
    """

    class Meta(IssueForm.Meta):
        fields = ["title", "subtitle", "byline", "preheader", "body", "lists"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self.fields["scheduled_at"]
        self.fields["lists"].required = False
        self.fields["body"].required = False

    def clean_body(self):
        body = self.cleaned_data["body"]
        if len(body) > MAX_BODY_LENGTH:
            raise ValidationError(
                f"The body is too long: {len(body):,} characters, the most is {MAX_BODY_LENGTH:,} (1 MB).",
                code="too_long",
            )
        return body

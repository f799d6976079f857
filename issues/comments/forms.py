"""Forms of the editors' inbox."""

from __future__ import annotations

from django import forms

from issues.comments.services import ANSWER_MAX_CHARS
from subscriptions.models import MailingList


class AnswerForm(forms.Form):
    text = forms.CharField(
        label="Your answer", widget=forms.Textarea(attrs={"rows": 10}), max_length=ANSWER_MAX_CHARS, strip=True
    )

    def clean_text(self) -> str:
        text = self.cleaned_data["text"]
        if not text:
            raise forms.ValidationError("Write an answer first.")
        return text


class PublishForm(forms.Form):
    consent = forms.BooleanField(
        label="The writer agreed to have this letter published in the archive.",
        required=True,
        error_messages={"required": "Tick the box to record the writer's consent before publishing."},
    )


class RequestForm(forms.Form):
    """Which list a request by email is about, and what to send."""

    action = forms.ChoiceField(choices=[("subscribe", "Send a confirmation"), ("leave", "Send the link to leave")])
    mailing_list = forms.ModelChoiceField(queryset=MailingList.objects.all(), label="List", empty_label=None)

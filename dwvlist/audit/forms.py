from __future__ import annotations

from django import forms

from dwvlist.audit.models import AuditEntry


class AuditFilterForm(forms.Form):
    action = forms.ChoiceField(required=False, choices=[("", "Any action"), *AuditEntry.Action.choices])
    actor = forms.CharField(required=False, max_length=200, label="Who", help_text="A user name or a token label.")
    object_type = forms.ChoiceField(
        required=False,
        label="Object",
        choices=[
            ("", "Any object"),
            ("issue", "Issues"),
            ("list", "Lists"),
            ("subscriber", "Subscribers"),
            ("import", "Imports"),
            ("export", "Exports"),
            ("token", "API tokens"),
            ("staff", "Staff accounts"),
        ],
    )
    object_id = forms.CharField(required=False, max_length=64, label="Object id")
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("since") and cleaned.get("until") and cleaned["since"] > cleaned["until"]:
            raise forms.ValidationError("The first day comes after the last.")
        return cleaned

"""The admin's form for a new API token."""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model

from api.models import SCOPES


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What will use it, e.g. “the website's signup form”.")
    user = forms.ModelChoiceField(
        queryset=get_user_model().objects.filter(is_active=True, is_staff=True).order_by("username"),
        help_text="The token can do no more than this staff account may.",
    )
    scopes = forms.MultipleChoiceField(
        choices=[(name, f"{name}: {text}") for name, text in SCOPES.items()],
        widget=forms.CheckboxSelectMultiple,
    )

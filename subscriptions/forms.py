"""Forms for readers: subscribe, preferences, change of address."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from subscriptions.addresses import email_normalize
from subscriptions.models import EMAIL_MAX_LENGTH, NAME_MAX_LENGTH, MailingList


def _name_clean(value: str) -> str:
    # Names end up in mail headers ("Name <address>"): a line break there
    # would let a stranger add headers of their own.
    if any(char in value for char in "\r\n\x00"):
        raise ValidationError("A name cannot contain line breaks.", code="invalid")
    value = value.strip()
    if len(value) > NAME_MAX_LENGTH:
        raise ValidationError(f"A name can be at most {NAME_MAX_LENGTH} characters long.", code="too_long")
    return value


class _EmailField(forms.CharField):
    def __init__(self, **kwargs):
        # A loose cap against junk; email_normalize words the real limit.
        kwargs.setdefault("max_length", 4 * EMAIL_MAX_LENGTH)
        kwargs.setdefault("strip", False)
        kwargs.setdefault("widget", forms.EmailInput(attrs={"autocomplete": "email"}))
        kwargs.setdefault("error_messages", {"required": "Enter an email address."})
        super().__init__(**kwargs)

    def clean(self, value):
        value = super().clean(value)
        return email_normalize(value)


class _NameField(forms.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("strip", False)
        kwargs.setdefault("widget", forms.TextInput(attrs={"autocomplete": "name", "maxlength": NAME_MAX_LENGTH}))
        super().__init__(**kwargs)

    def clean(self, value):
        return _name_clean(super().clean(value) or "")


class _ListSlugsField(forms.MultipleChoiceField):
    widget = forms.CheckboxSelectMultiple
    default_error_messages = {"required": "Choose at least one list."}

    def validate(self, value):
        # Say which slug is wrong: the snippet may be pasted with a typo or
        # outlive its list.
        if self.required and not value:
            raise ValidationError(self.error_messages["required"], code="required")
        unknown = [slug for slug in value if not self.valid_value(slug)]
        if unknown:
            shown = ", ".join(f"\u201c{slug[:80]}\u201d" for slug in unknown[:3])
            raise ValidationError(f"There is no public list called {shown}.", code="invalid_choice")


class SubscribeForm(forms.Form):
    """The public subscribe form, also what the embeddable snippet posts."""

    email = _EmailField(label="Email address")
    name = _NameField(label="Name (optional)")
    lists = _ListSlugsField(label="Lists")
    # The honeypot: hidden from people by CSS, filled in by naive bots.
    website = forms.CharField(label="Leave this field empty", required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.public_lists = {ml.slug: ml for ml in MailingList.objects.filter(is_public=True)}
        self.fields["lists"].choices = [(slug, ml.name) for slug, ml in self.public_lists.items()]
        self.fields["website"].widget.attrs.update({"autocomplete": "off", "tabindex": "-1"})

    @property
    def is_bot(self) -> bool:
        return bool(self.data.get("website"))

    def chosen_lists(self) -> list[MailingList]:
        return [self.public_lists[slug] for slug in self.cleaned_data["lists"]]


class PreferencesForm(forms.Form):
    name = _NameField(label="Your name")
    lists = forms.MultipleChoiceField(label="Your lists", required=False, widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, choices: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["lists"].choices = choices

    def list_ids(self) -> list[int]:
        return [int(value) for value in self.cleaned_data["lists"]]


class AddressForm(forms.Form):
    new_email = _EmailField(label="New email address")

"""The subscribers screen: find any reader among a million, see their history, act on them.

Editors and admins search and read (dwvlist.access.READERS); only admins
act (unsubscribe, resend the confirmation, suppress, erase), each behind a
confirmation page, through the services the reader's own links use.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from dwvlist import access
from dwvlist.access import readers_required, subscribers_required
from subscriptions import confirmation, selectors, suppressions, unsubscribing
from subscriptions.addresses import email_hash
from subscriptions.erasure import subscriber_erase
from subscriptions.models import MailingList, Subscriber, Subscription, Suppression

QUERY_MAX_LENGTH = 254
STATUS_CHOICES = [("", "Any status"), *Subscription.Status.choices, ("suppressed", "Suppressed (never mailed)")]
SOURCE_CHOICES = [("", "Any source"), *Subscription.ConsentSource.choices]


class ReaderSearchForm(forms.Form):
    q = forms.CharField(
        label="Search",
        required=False,
        max_length=QUERY_MAX_LENGTH,
        help_text="Any part of an address or a name, e.g. “union-local” or “ruiz”.",
        widget=forms.TextInput(attrs={"type": "search", "autocomplete": "off", "spellcheck": "false"}),
    )
    mailing_list = forms.ModelChoiceField(
        queryset=MailingList.objects.order_by("name"), required=False, label="List", empty_label="Any list"
    )
    status = forms.ChoiceField(choices=STATUS_CHOICES, required=False, label="Status")
    source = forms.ChoiceField(choices=SOURCE_CHOICES, required=False, label="Came from")
    joined_from = forms.DateField(
        required=False, label="Joined from", widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    joined_to = forms.DateField(
        required=False, label="Joined until", widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )

    def clean_q(self) -> str:
        value = self.cleaned_data["q"]
        if any(ord(char) < 32 for char in value):
            raise ValidationError("A search cannot contain control characters or line breaks.", code="invalid")
        return value.strip()

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("joined_from"), cleaned.get("joined_to")
        if start and end and start > end:
            self.add_error("joined_to", "The end date is before the start date.")
        return cleaned

    def filters(self) -> selectors.ReaderFilters:
        data = self.cleaned_data
        return selectors.ReaderFilters(
            query=data["q"],
            list_id=data["mailing_list"].pk if data["mailing_list"] else None,
            status=data["status"],
            source=data["source"],
            joined_from=data["joined_from"],
            joined_to=data["joined_to"],
        )


def _cursor(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 18:
        raise ValidationError("That page link is broken: start from the first page.")
    return int(value)


def _page_link(request, **cursor) -> str:
    params = request.GET.copy()
    params.pop("after", None)
    params.pop("before", None)
    for name, value in cursor.items():
        params[name] = str(value)
    return "?" + params.urlencode()


@never_cache
@require_GET
@readers_required
def reader_list(request):
    """Search readers by any part of their address or name, filter them, page through newest first."""
    form = ReaderSearchForm(request.GET or None)
    context = {"form": form, "page": None, "may_act": access.user_may(request.user, access.SUBSCRIBERS)}
    if request.GET and not form.is_valid():
        return render(request, "subscriptions/staff/readers.html", context, status=400)
    filters = form.filters() if request.GET else selectors.ReaderFilters()
    try:
        after, before = _cursor(request.GET.get("after")), _cursor(request.GET.get("before"))
    except ValidationError as exc:
        context["cursor_error"] = exc.messages[0]
        return render(request, "subscriptions/staff/readers.html", context, status=400)
    page = selectors.readers_page(filters=filters, after=after, before=before)
    context.update(
        page=page,
        searched=bool(request.GET.get("q") or any(request.GET.get(k) for k in ("mailing_list", "status", "source"))),
        newer_link=_page_link(request, before=page.newer) if page.newer else "",
        older_link=_page_link(request, after=page.older) if page.older else "",
        first_link=_page_link(request) if (after or before) else "",
    )
    return render(request, "subscriptions/staff/readers.html", context)


@never_cache
@require_GET
@readers_required
def reader_detail(request, subscriber_id: int):
    """Show one reader: subscriptions with their consent record, deliveries, events, replies, actions."""
    subscriber = get_object_or_404(Subscriber, pk=subscriber_id)
    context = {
        "reader": subscriber,
        "may_act": access.user_may(request.user, access.SUBSCRIBERS),
        **selectors.reader_history(subscriber=subscriber),
    }
    return render(request, "subscriptions/staff/reader.html", context)


ACTIONS = {
    "unsubscribe": "Unsubscribe",
    "resend": "Resend the confirmation mail",
    "suppress": "Suppress the address",
    "erase": "Erase the reader",
}


def _unsubscribe_target(subscriber: Subscriber, value: str) -> MailingList | None:
    """Return the list named by the form (None meaning every list), or raise Http404."""
    if value in ("", "all"):
        return None
    if not value.isdigit():
        raise Http404("No such list.")
    subscription = subscriber.subscriptions.select_related("mailing_list").filter(mailing_list_id=int(value)).first()
    if subscription is None:
        raise Http404("The reader is not on that list.")
    return subscription.mailing_list


def _act(request, subscriber: Subscriber, action: str, target: MailingList | None) -> str:
    """Do the confirmed action through the services; return the message for the admin."""
    if action == "unsubscribe":
        source = Subscription.UnsubscribeSource.ADMIN
        if target is None:
            changed = unsubscribing.subscriber_unsubscribe_all(subscriber_id=subscriber.pk, source=source)
            return (
                f"Unsubscribed from {changed} list{'s' if changed != 1 else ''}."
                if changed
                else "Already off every list."
            )
        if unsubscribing.subscription_unsubscribe(subscriber_id=subscriber.pk, list_id=target.pk, source=source):
            return f"Unsubscribed from {target.name}."
        return f"Already off {target.name}."
    if action == "resend":
        return {
            "queued": "The confirmation mail is on its way.",
            "none_pending": "Nothing waits for confirmation: no mail sent.",
            "suppressed": "The address is suppressed: no mail sent.",
            "too_soon": "A confirmation mail went out a short while ago: no second one sent yet.",
        }[confirmation.confirmation_mail_resend(subscriber_id=subscriber.pk)]
    if action == "suppress":
        existing = Suppression.objects.filter(email_hash=email_hash(subscriber.email)).first()
        if existing is not None:
            return f"Already suppressed ({existing.get_reason_display().lower()})."
        note = f"suppressed by {request.user.get_username()} on the subscribers screen"
        suppressions.suppression_add(email=subscriber.email, reason=Suppression.Reason.MANUAL, note=note)
        return "Suppressed: this address will never be mailed again."
    subscriber_erase(subscriber_id=subscriber.pk)
    return "Erased: only a keyed hash of the address stays, on the suppression list."


@require_http_methods(["GET", "POST"])
@subscribers_required
def reader_action(request, subscriber_id: int, action: str):
    """Ask for confirmation (GET), then act on the reader (POST)."""
    if action not in ACTIONS:
        raise Http404("No such action.")
    subscriber = get_object_or_404(Subscriber, pk=subscriber_id)
    target = _unsubscribe_target(subscriber, request.POST.get("list", request.GET.get("list", "")))
    if request.method == "POST":
        message = _act(request, subscriber, action, target)
        messages.success(request, message)
        if action == "erase":
            return redirect("staff:readers")
        return redirect("staff:reader", subscriber_id=subscriber.pk)
    context = {
        "reader": subscriber,
        "action": action,
        "action_label": ACTIONS[action],
        "target": target,
        "pending": subscriber.subscriptions.filter(status=Subscription.Status.PENDING).count(),
        "back": reverse("staff:reader", kwargs={"subscriber_id": subscriber.pk}),
    }
    return render(request, "subscriptions/staff/reader_confirm.html", context)

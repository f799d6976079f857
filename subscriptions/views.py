"""Readers' pages. Readers have no account: each link carries a signed token."""

from __future__ import annotations

from email.utils import parseaddr

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from dwvlist.clientip import client_ip
from subscriptions import address_change, confirmation, erasure, services, unsubscribing
from subscriptions import preferences as reader_preferences
from subscriptions.forms import AddressForm, PreferencesForm, SubscribeForm
from subscriptions.models import MailingList, Subscription
from subscriptions.ratelimit import subscribe_post_allowed
from subscriptions.snippets import subscribe_snippet
from subscriptions.tokens import preferences_token_make


def _link_invalid(request) -> HttpResponse:
    """Answer a forged, unknown or dead token with a friendly 404."""
    return render(request, "subscriptions/link_invalid.html", status=404)


def list_detail(request, slug: str):
    """Show a public list with its subscribe form (and, to staff, the embeddable snippet)."""
    mailing_list = get_object_or_404(MailingList, slug=slug, is_public=True)
    form = SubscribeForm(initial={"lists": [mailing_list.slug]})
    context = {"mailing_list": mailing_list, "form": form}
    if request.user.is_authenticated and request.user.is_staff:
        context["snippet"] = subscribe_snippet(mailing_list)
    return render(request, "subscriptions/list_detail.html", context)


# Exempt from CSRF: the embeddable snippet posts here from other sites, and
# there is no session to protect. Honeypot and rate limits guard it instead.
@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def subscribe(request):
    """Show the form for every public list; on POST, subscribe and send to "check your inbox"."""
    if request.method != "POST":
        return render(request, "subscriptions/subscribe.html", {"form": SubscribeForm()})
    # Every outcome below that is not a typo in the form looks the same, so
    # the form cannot tell anyone whether an address is known.
    if not subscribe_post_allowed(client=client_ip(request)):
        return redirect("subscriptions:check_inbox")
    form = SubscribeForm(request.POST)
    if form.is_bot:
        return redirect("subscriptions:check_inbox")
    if not form.is_valid():
        return render(request, "subscriptions/subscribe.html", {"form": form}, status=400)
    services.subscriber_subscribe(
        email=form.cleaned_data["email"],
        name=form.cleaned_data["name"],
        lists=form.chosen_lists(),
        client=client_ip(request),
    )
    return redirect("subscriptions:check_inbox")


def check_inbox(request):
    """Tell the reader to look for the confirmation mail, and how an erased address comes back."""
    lists = list(MailingList.objects.filter(is_public=True).order_by("pk")[:2])
    # One public list: its editors; several: the site's own sender.
    contact = parseaddr(settings.DEFAULT_FROM_EMAIL)[1]
    if len(lists) == 1:
        contact = lists[0].contact_email or lists[0].reply_to or lists[0].from_email
    return render(request, "subscriptions/check_inbox.html", {"contact": contact})


_CONFIRM_STATUS = {"invalid": 404, "expired": 410}


# A GET shows a button and a POST confirms: mail scanners fetch every link
# in a message, and a consent they gave is no consent. The token is the
# authority, so no CSRF cookie is needed (mail apps' browsers may lack it).
@csrf_exempt
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def confirm(request, token: str):
    """Confirm a subscription from the link in the confirmation mail."""
    if request.method == "POST":
        outcome = confirmation.subscriber_confirm(token=token)
    else:
        outcome = confirmation.confirmation_check(token=token)
    if outcome.result == "invalid":
        return _link_invalid(request)
    return render(
        request,
        "subscriptions/confirm.html",
        {"outcome": outcome, "token": token},
        status=_CONFIRM_STATUS.get(outcome.result, 200),
    )


def _is_one_click(request) -> bool:
    # RFC 8058: the mailbox provider POSTs exactly this key and value, as
    # application/x-www-form-urlencoded or multipart/form-data.
    return request.POST.get("List-Unsubscribe") == "One-Click"


# The token is the authority, and RFC 8058 POSTs come with no cookie and
# no CSRF token.
@csrf_exempt
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request, token: str):
    """GET shows a button and changes nothing; POST unsubscribes (one-click included)."""
    if request.method != "POST":
        subscription = unsubscribing.unsubscribe_token_subscription(token=token)
        if subscription is None:
            return _link_invalid(request)
        return render(request, "subscriptions/unsubscribe.html", {"subscription": subscription, "token": token})
    one_click = _is_one_click(request)
    source = Subscription.UnsubscribeSource.ONE_CLICK if one_click else Subscription.UnsubscribeSource.LINK
    outcome = unsubscribing.subscription_unsubscribe_by_token(token=token, source=source)
    if outcome is None:
        return _link_invalid(request)
    if one_click:
        # Answer the provider plainly and at once: no redirect, no page.
        return HttpResponse("Unsubscribed.\n", content_type="text/plain; charset=utf-8")
    return render(
        request,
        "subscriptions/unsubscribed.html",
        {
            "outcome": outcome,
            "token": token,
            "preferences_token": preferences_token_make(subscriber_id=outcome.subscription.subscriber_id),
        },
    )


@csrf_exempt
@never_cache
@require_POST
def resubscribe(request, token: str):
    """Undo an unsubscribe from the page it led to: the reader is on the list again."""
    outcome = unsubscribing.subscription_resubscribe_by_token(token=token, client=request.META.get("REMOTE_ADDR", ""))
    if outcome is None:
        return _link_invalid(request)
    mailing_list = outcome.subscription.mailing_list
    context = {
        "outcome": outcome,
        "preferences_token": preferences_token_make(subscriber_id=outcome.subscription.subscriber_id),
        "contact": mailing_list.contact_email or mailing_list.reply_to or mailing_list.from_email,
    }
    return render(request, "subscriptions/resubscribed.html", context)


def _preferences_form(subscriber, data=None) -> PreferencesForm:
    rows = reader_preferences.preference_lists(subscriber=subscriber)
    initial = {
        "name": subscriber.name,
        "lists": [str(ml.pk) for ml, s in rows if s is not None and s.status != Subscription.Status.UNSUBSCRIBED],
    }
    return PreferencesForm(data, initial=initial, choices=[(str(ml.pk), ml.name) for ml, _ in rows])


def _preferences_page(request, token, subscriber, *, form=None, address_form=None, status=200):
    return render(
        request,
        "subscriptions/preferences.html",
        {
            "subscriber": subscriber,
            "token": token,
            "form": form or _preferences_form(subscriber),
            "address_form": address_form or AddressForm(),
            "rows": reader_preferences.preference_lists(subscriber=subscriber),
            "tracking_lists": list(
                subscriber.subscriptions.filter(status="active", mailing_list__tracking_enabled=True)
                .order_by("mailing_list__name")
                .values_list("mailing_list__name", flat=True)
            ),
        },
        status=status,
    )


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def preferences(request, token: str):
    """Show and change the reader's lists and name."""
    subscriber = reader_preferences.preferences_token_subscriber(token=token)
    if subscriber is None:
        return _link_invalid(request)
    if request.method != "POST":
        return _preferences_page(request, token, subscriber)
    form = _preferences_form(subscriber, request.POST)
    if not form.is_valid():
        return _preferences_page(request, token, subscriber, form=form, status=400)
    reader_preferences.subscriber_preferences_update(
        subscriber_id=subscriber.pk, name=form.cleaned_data["name"], list_ids=form.list_ids()
    )
    messages.success(request, "Your preferences are saved.")
    return redirect("subscriptions:preferences", token=token)


@never_cache
@require_POST
def preferences_address(request, token: str):
    """Start a change of address: the new address gets a link to confirm it."""
    subscriber = reader_preferences.preferences_token_subscriber(token=token)
    if subscriber is None:
        return _link_invalid(request)
    form = AddressForm(request.POST)
    if not form.is_valid():
        return _preferences_page(request, token, subscriber, address_form=form, status=400)
    address_change.subscriber_address_change_request(
        subscriber_id=subscriber.pk, new_email=form.cleaned_data["new_email"]
    )
    # The same answer whether the new address is free, taken or suppressed.
    return render(
        request,
        "subscriptions/address_sent.html",
        {"new_email": form.cleaned_data["new_email"], "token": token},
    )


@never_cache
@require_http_methods(["GET", "HEAD"])
def preferences_data(request, token: str):
    """Download everything we hold about the reader, as JSON."""
    subscriber = reader_preferences.preferences_token_subscriber(token=token)
    if subscriber is None:
        return _link_invalid(request)
    response = JsonResponse(
        erasure.subscriber_data_export(subscriber_id=subscriber.pk), json_dumps_params={"indent": 2}
    )
    response["Content-Disposition"] = 'attachment; filename="my-data.json"'
    return response


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def preferences_erase(request, token: str):
    """GET asks for confirmation; POST deletes the reader and everything about them."""
    subscriber = reader_preferences.preferences_token_subscriber(token=token)
    if subscriber is None:
        return _link_invalid(request)
    if request.method != "POST":
        return render(request, "subscriptions/erase.html", {"subscriber": subscriber, "token": token})
    erasure.subscriber_erase(subscriber_id=subscriber.pk)
    return render(request, "subscriptions/erased.html")


@csrf_exempt
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def confirm_address(request, token: str):
    """Confirm a new address from the link mailed to it (GET shows a button)."""
    if request.method == "POST":
        outcome = address_change.subscriber_address_change_confirm(token=token)
    else:
        outcome = address_change.address_change_check(token=token)
    if outcome.result == "invalid":
        return _link_invalid(request)
    context = {"outcome": outcome, "token": token}
    if outcome.subscriber is not None:
        context["preferences_token"] = preferences_token_make(subscriber_id=outcome.subscriber.pk)
    return render(
        request, "subscriptions/confirm_address.html", context, status=409 if outcome.result == "taken" else 200
    )


@require_GET
def home(request):
    """List the public mailing lists."""
    lists = MailingList.objects.filter(is_public=True)
    return render(request, "dwvlist/home.html", {"lists": lists})

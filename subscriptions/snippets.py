"""The embeddable subscribe form that admins paste into other sites."""

from __future__ import annotations

from django.conf import settings
from django.template.loader import render_to_string

from subscriptions.models import MailingList


def subscribe_snippet(mailing_list: MailingList) -> str:
    """Return a plain HTML form (no JavaScript) that subscribes to the list from any site."""
    return render_to_string(
        "subscriptions/snippet.html", {"mailing_list": mailing_list, "action": f"{settings.SITE_URL}/subscribe/"}
    ).strip()

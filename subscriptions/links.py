"""Build the per-reader links and list headers that every issue mail carries."""

from __future__ import annotations

from urllib.parse import quote

from django.conf import settings

from subscriptions.models import MailingList
from subscriptions.tokens import preferences_token_make, unsubscribe_token_make


def unsubscribe_url(*, subscriber_id: int, list_id: int, issue_id: int | None = None) -> str:
    """Return the absolute unsubscribe URL (GET shows a button, POST unsubscribes)."""
    token = unsubscribe_token_make(subscriber_id=subscriber_id, list_id=list_id, issue_id=issue_id)
    return f"{settings.SITE_URL}/u/{token}/"


def preferences_url(*, subscriber_id: int) -> str:
    """Return the absolute URL of the reader's preference centre."""
    return f"{settings.SITE_URL}/p/{preferences_token_make(subscriber_id=subscriber_id)}/"


# What a reader can do by writing to the list's address with "+COMMAND".
LIST_COMMANDS = ("subscribe", "join", "leave", "help")


def list_command_address(mailing_list: MailingList, command: str) -> str:
    """Return the list's address for a mail command: the from address with +command (e.g. +subscribe)."""
    return mailing_list.command_address(command)


def list_contact_address(mailing_list: MailingList) -> str:
    """Return the address readers write to: the list's contact address, else its reply-to, else its sender."""
    return mailing_list.contact_email or mailing_list.reply_to or mailing_list.from_email


def unsubscribe_mailto(mailing_list: MailingList) -> str:
    """Return the list's unsubscribe address: the from address with +unsubscribe."""
    local, _, domain = mailing_list.from_email.partition("@")
    return f"{local}+unsubscribe@{domain}"


def list_id_header(mailing_list: MailingList) -> str:
    """Return the RFC 2919 List-Id value: a phrase and <slug.domain>."""
    domain = settings.SITE_URL.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0]
    name = mailing_list.name.replace('"', "").replace("\r", " ").replace("\n", " ")
    return f'"{name}" <{mailing_list.slug}.{domain}>'


def list_archive_url(mailing_list: MailingList) -> str:
    """Return the list's public archive URL."""
    return f"{settings.SITE_URL}/archive/{mailing_list.slug}/"


def list_headers(*, mailing_list: MailingList, unsubscribe: str) -> dict[str, str]:
    """Return the list headers (RFC 2369, 2919, 8058) for one reader's copy."""
    mailto = unsubscribe_mailto(mailing_list)
    headers = {
        "List-Unsubscribe": f"<{unsubscribe}>, <mailto:{mailto}?subject={quote('unsubscribe')}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "List-Id": list_id_header(mailing_list),
        "Precedence": "bulk",
    }
    if mailing_list.archive_enabled:
        headers["List-Archive"] = f"<{list_archive_url(mailing_list)}>"
    return headers

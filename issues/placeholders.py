"""Per-reader link placeholders: filled only in links that lead to this site.

The frozen snapshot of an issue holds two placeholders that each reader's
copy fills with their own signed links. Those links are the reader's
credentials (unsubscribe, preferences, erase, change of address), so a
placeholder that the editor's body puts in an image source, or in a link
to another host, would hand every reader's token to that host. Here, in
what the editor wrote (body, subtitle, byline, the list's footer), a
placeholder survives only where it is a link to this site: an HTML link
whose href is the placeholder or starts with SITE_URL, or, in the plain
text, a URL standing on its own that is the placeholder or on this site.
Everywhere else it is taken out, and the editor's preview says so.

Providers fill their own per-reader variables (Mailgun's
%recipient.unsubscribe_url%, SendGrid's -unsubscribe_url-) in the body
and subject they are given, so those spellings are taken out too.
"""

from __future__ import annotations

import re

UNSUBSCRIBE_URL = "%%unsubscribe_url%%"
PREFERENCES_URL = "%%preferences_url%%"
MARKS = (UNSUBSCRIBE_URL, PREFERENCES_URL)

# markdown-it percent-encodes a link destination: [x](%%unsubscribe_url%%) becomes href="%25%25...%25%25".
_ENCODED = {mark.replace("%", "%25"): mark for mark in MARKS}
_PROVIDER_VARIABLES = re.compile(r"%recipient\.[^%\s]{0,200}%|-(?:unsubscribe_url|preferences_url)-", re.IGNORECASE)
_LINK_HREF = re.compile(r'(<a\b[^>]*?\shref=")([^"]*)(")', re.IGNORECASE)
_TEXT_URL = re.compile(r"[^\s<>()\[\]\"']+")
# Stand-ins for the placeholders kept, while the others are taken out.
_KEPT = {UNSUBSCRIBE_URL: "\x00dwv-unsubscribe\x00", PREFERENCES_URL: "\x00dwv-preferences\x00"}


def _leads_here(url: str, site_url: str) -> bool:
    return url.startswith(MARKS) or url.startswith(site_url.rstrip("/") + "/")


def _take_out(content: str) -> tuple[str, int]:
    """Return content without any placeholder or provider variable, and how many there were."""
    count = sum(content.count(mark) for mark in MARKS) + len(_PROVIDER_VARIABLES.findall(content))
    for mark in MARKS:
        content = content.replace(mark, "")
    return _PROVIDER_VARIABLES.sub("", content), count


def _restore(content: str) -> str:
    for mark, kept in _KEPT.items():
        content = content.replace(kept, mark)
    return content


def html_confine(html: str, *, site_url: str) -> tuple[str, int]:
    """Return the sanitised HTML with placeholders left only in link hrefs to this site, and how many went."""

    def keep_if_ours(match: re.Match) -> str:
        href = match.group(2)
        for encoded, mark in _ENCODED.items():
            href = href.replace(encoded, mark)
        if not any(mark in href for mark in MARKS) or not _leads_here(href, site_url):
            return match.group(0)
        for mark, kept in _KEPT.items():
            href = href.replace(mark, kept)
        return f"{match.group(1)}{href}{match.group(3)}"

    confined, dropped = _take_out(_LINK_HREF.sub(keep_if_ours, html))
    return _restore(confined), dropped


def text_confine(text: str, *, site_url: str) -> tuple[str, int]:
    """Return plain text with placeholders left only in URLs of their own that lead to this site, and how many went."""

    def keep_if_ours(match: re.Match) -> str:
        url = match.group(0)
        if not any(mark in url for mark in MARKS) or not _leads_here(url, site_url):
            return url
        for mark, kept in _KEPT.items():
            url = url.replace(mark, kept)
        return url

    confined, dropped = _take_out(_TEXT_URL.sub(keep_if_ours, text))
    return _restore(confined), dropped


def plain_confine(value: str) -> tuple[str, int]:
    """Return a value that is never a link (a subject line) without any placeholder, and how many went."""
    return _take_out(value)

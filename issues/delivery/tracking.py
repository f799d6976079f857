"""Opt-in open and click tracking on the SMTP path: the signed links in each reader's copy.

Only the article's own http(s) links are tracked (never the unsubscribe or
preferences links). A tracked link names the delivery and the link's
position in the issue's frozen snapshot, signed; the redirect reads the
address from the snapshot, so it can only ever lead where the editor
pointed, never to an address put in a URL (no open redirect).

The snapshot is marked once per batch (html_marked); each reader's copy
then only has its own tokens filled in (html_tracked).
"""

from __future__ import annotations

import base64
import hmac
import html as html_lib
import re
from dataclasses import dataclass

from django.conf import settings

from dwvlist.keyed_hmac import salted_hmac_digest
from issues.rendering import ARTICLE_END, ARTICLE_START

_SALT = "dwvlist.tracking.link"
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_HREF = re.compile(r'href="(https?://[^"]*)"', re.IGNORECASE)
_MARK = re.compile(r"%%track:(\d+|open)%%")
OPEN = "o"
PIXEL = '<img src="%%track:open%%" width="1" height="1" alt="" style="display:block;border:0;width:1px;height:1px">'


def _b36(number: int) -> str:
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = _DIGITS[rest] + out
        if number == 0:
            return out


def _signature(value: str) -> str:
    return base64.b32encode(salted_hmac_digest(_SALT, value)[:10]).decode().rstrip("=").lower()


def _article_span(html: str) -> tuple[int, int]:
    start = html.find(ARTICLE_START)
    end = html.find(ARTICLE_END, start + 1)
    if start == -1 or end == -1:
        return 0, 0
    return start + len(ARTICLE_START), end


def article_links(html: str) -> list[str]:
    """Return the article's http(s) link targets in the snapshot, in order (the click tokens' positions)."""
    start, end = _article_span(html)
    return [html_lib.unescape(match.group(1)) for match in _HREF.finditer(html, start, end)]


def html_marked(html: str) -> str:
    """Return the snapshot with a mark for each article link and for the open pixel."""
    start, end = _article_span(html)
    counter = iter(range(1_000_000))
    article = _HREF.sub(lambda m: f'href="%%track:{next(counter)}%%"', html[start:end])
    marked = html[:start] + article + html[end:]
    body_end = marked.rfind("</body>")
    if body_end == -1:
        return marked + PIXEL
    return marked[:body_end] + PIXEL + marked[body_end:]


def tracking_token_make(*, delivery_id: int, link: int | None) -> str:
    """Return the signed token of one reader's link (`link` its position) or, with None, of their open pixel."""
    value = f"{_b36(delivery_id)}.{OPEN if link is None else _b36(link)}"
    return f"{value}.{_signature(value)}"


@dataclass(frozen=True)
class TrackingClaim:
    delivery_id: int
    link: int | None  # None: the open pixel


def tracking_token_read(token: str) -> TrackingClaim | None:
    """Return what a tracking token names, or None if it is junk or forged."""
    if not isinstance(token, str) or len(token) > 60:
        return None
    parts = token.lower().split(".")
    if len(parts) != 3 or not all(parts):
        return None
    delivery, link, signature = parts
    if not hmac.compare_digest(signature, _signature(f"{delivery}.{link}")):
        return None
    try:
        return TrackingClaim(int(delivery, 36), None if link == OPEN else int(link, 36))
    except ValueError:
        return None


def tracking_url(*, delivery_id: int, link: int | None) -> str:
    """Return the absolute URL of a tracked link or open pixel."""
    token = tracking_token_make(delivery_id=delivery_id, link=link)
    return f"{settings.SITE_URL}/t/{'o' if link is None else 'c'}/{token}/"


def html_tracked(marked: str, *, delivery_id: int) -> str:
    """Fill one reader's tracked links and pixel into a marked snapshot."""

    def fill(match: re.Match) -> str:
        which = match.group(1)
        return tracking_url(delivery_id=delivery_id, link=None if which == "open" else int(which))

    return _MARK.sub(fill, marked)

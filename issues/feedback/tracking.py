"""Opens and clicks on the SMTP path: the pixel and the redirect, recorded as events through the same rules.

The links are made in issues/delivery/tracking.py. A click redirects only
to the address at that position of the issue's frozen snapshot, the one
the editor wrote; a token that does not check out, or names no such link,
gets a 404 and goes nowhere. Each reader's first open, and first click on
each link, is one event (provider "smtp"), so reloading records nothing
more. Nothing about the reader's device or address is stored. A list that
has turned tracking off since the mail went out records nothing.
"""

from __future__ import annotations

import base64
import logging

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from issues.delivery.tracking import article_links, tracking_token_read
from issues.feedback.events import delivery_tracks
from issues.feedback.smtp_events import smtp_event_record
from issues.models import Delivery

logger = logging.getLogger(__name__)

# A transparent 1x1 GIF.
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def tracking_record(*, delivery: Delivery, link: int | None, url: str = "") -> bool:
    """Record the reader's open (link None) or click on link number `link`; return False if already recorded."""
    if not delivery_tracks(delivery):
        return False
    event_id = f"open|{delivery.pk}" if link is None else f"click|{delivery.pk}|{link}"
    event = smtp_event_record(
        event_id=event_id,
        event_type="opened" if link is None else "clicked",
        delivery=delivery,
        recipient=delivery.email,
        message_id=delivery.provider_message_id,
        payload={"source": "tracking", "link": link, "url": url[:2000]} if url else {"source": "tracking"},
    )
    return event is not None


@never_cache
@require_http_methods(["GET", "HEAD"])
def tracking_open(request: HttpRequest, token: str) -> HttpResponse:
    """Answer the open pixel, recording the reader's first open."""
    claim = tracking_token_read(token)
    if claim is None or claim.link is not None:
        raise Http404("No such image.")
    delivery = Delivery.objects.filter(pk=claim.delivery_id).first()
    if delivery is not None:
        tracking_record(delivery=delivery, link=None)
    return HttpResponse(PIXEL_GIF, content_type="image/gif")


@never_cache
@require_http_methods(["GET", "HEAD"])
def tracking_click(request: HttpRequest, token: str) -> HttpResponse:
    """Send the reader on to the address the editor wrote, recording the click."""
    claim = tracking_token_read(token)
    if claim is None or claim.link is None:
        raise Http404("This link is not valid.")
    delivery = Delivery.objects.filter(pk=claim.delivery_id).select_related("issue").first()
    if delivery is None:
        raise Http404("This link is not valid.")
    links = article_links(delivery.issue.snapshot_html)
    if claim.link >= len(links):
        raise Http404("This link is not valid.")
    url = links[claim.link]
    if any(ord(character) < 33 for character in url):
        raise Http404("This link is not valid.")  # a character no Location header may carry
    if request.method == "GET":
        tracking_record(delivery=delivery, link=claim.link, url=url)
    return HttpResponseRedirect(url)

"""POST /bounces/receive/: a returned mail, raw RFC 822 in the body, from a mail hook or worker.

Authenticated by `Authorization: Bearer <BOUNCE_HTTP_TOKEN>`; refused
outright while no token is set. Answers 200 with what the mail came to
(JSON), 400 for an empty body, 413 for a mail over BOUNCE_MESSAGE_MAX_BYTES.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from issues.feedback.bounces.intake import bounce_receive

logger = logging.getLogger(__name__)


def _plain(text: str, status: int) -> HttpResponse:
    return HttpResponse(text + "\n", status=status, content_type="text/plain; charset=utf-8")


@csrf_exempt
@require_POST
def bounce_receive_http(request: HttpRequest) -> HttpResponse:
    """Record the returned mail in the request body."""
    token = settings.BOUNCE_HTTP_TOKEN
    if not token:
        return _plain("Bounce intake over HTTP is off: set BOUNCE_HTTP_TOKEN.", 403)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not constant_time_compare(given.strip(), token):
        response = _plain("A valid bearer token is required.", 401)
        response["WWW-Authenticate"] = 'Bearer realm="bounces"'
        return response
    limit = settings.BOUNCE_MESSAGE_MAX_BYTES
    try:
        length = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        return _plain("Content-Length is not a number.", 400)
    if length > limit:
        return _plain(f"The mail is over {limit} bytes.", 413)
    raw = request.read(limit + 1)
    if len(raw) > limit:
        return _plain(f"The mail is over {limit} bytes.", 413)
    if not raw.strip():
        return _plain("The body must be a mail (RFC 822), and it is empty.", 400)
    recipient = request.GET.get("recipient", "")[:320]
    result = bounce_receive(raw=raw, source="http", envelope_recipient=recipient)
    return JsonResponse(
        {
            "form": result.form,
            "recorded": result.recorded,
            "replayed": result.replayed,
            "unattributed": result.unattributed,
        }
    )

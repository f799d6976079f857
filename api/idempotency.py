"""Idempotency-Key on POSTs that create or send.

The first answer to a key is kept per token with a fingerprint of the
request (method, path and body). A repeat with the same fingerprint gets
that answer again and changes nothing; a repeat with a different one is
refused with 422; one arriving while the first is still being handled
gets 409. Answers that depend on the moment rather than the request
(401, 403, 409, 429, 5xx) are not kept, so the client may retry them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from datetime import timedelta

from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.utils import timezone

from api.auth import request_token
from api.errors import problem_response, request_too_big
from api.models import IdempotencyRecord

HEADER = "Idempotency-Key"
KEEP_FOR = timedelta(days=7)
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_NOT_KEPT = {401, 403, 409, 429}


def _fingerprint(request) -> str:
    body = request.body
    try:
        # The same JSON however it is spaced or ordered is the same request.
        body = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, UnicodeDecodeError):
        pass
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.get_full_path().encode(), body):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def _replay(record: IdempotencyRecord) -> HttpResponse:
    response = HttpResponse(bytes(record.body), status=record.status_code, content_type=record.content_type)
    response["Idempotent-Replayed"] = "true"
    return response


def idempotent(view):
    """Wrap an operation's view so an Idempotency-Key makes repeats harmless."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return view(request, *args, **kwargs)
        token = request_token(request)
        if token is None:
            return view(request, *args, **kwargs)  # answers 401
        if not _KEY.match(key):
            return problem_response(
                400,
                "An Idempotency-Key is 1 to 255 printable ASCII characters without spaces.",
                errors=[{"field": HEADER, "message": "Not a valid key."}],
            )
        try:
            fingerprint = _fingerprint(request)
        except RequestDataTooBig:
            return request_too_big()
        # Answers are kept for KEEP_FOR; the token's older ones go as it makes new ones.
        IdempotencyRecord.objects.filter(token=token, created_at__lt=timezone.now() - KEEP_FOR).delete()
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(token=token, key=key, fingerprint=fingerprint)
        except IntegrityError:
            first = IdempotencyRecord.objects.filter(token=token, key=key).first()
            if first is None:  # deleted meanwhile (the first call failed): the client may retry
                return problem_response(409, "A request with this Idempotency-Key just failed; retry it.")
            if first.fingerprint != fingerprint:
                return problem_response(
                    422,
                    "This Idempotency-Key was used for a different request; use a new key for a new request.",
                    errors=[{"field": HEADER, "message": "Already used with another method, path or body."}],
                )
            if first.status_code == 0:
                return problem_response(409, "The first request with this Idempotency-Key is still being handled.")
            return _replay(first)
        try:
            response = view(request, *args, **kwargs)
        except BaseException:
            record.delete()
            raise
        if response.status_code >= 500 or response.status_code in _NOT_KEPT or response.streaming:
            record.delete()
            return response
        IdempotencyRecord.objects.filter(pk=record.pk).update(
            status_code=response.status_code,
            content_type=response.get("Content-Type", ""),
            body=response.content,
        )
        return response

    return wrapper

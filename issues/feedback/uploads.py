"""Inbound webhook posts up to INBOUND_MAX_BYTES: a reader's reply is never lost to its attachments.

Django refuses a body (or the form fields of a multipart post) larger than
DATA_UPLOAD_MAX_MEMORY_SIZE, 2.5 MB, which is right for every page of the
site. A provider's inbound post carries the whole mail, attachments
included: Postmark and Brevo as JSON, SendGrid's Inbound Parse and Mailgun's
routes as forms, the raw MIME sometimes in one field. For the inbound URLs
only, the body is read here up to INBOUND_MAX_BYTES before anymail looks at
it, and a multipart form is parsed without the field limit. The attachments
are only counted afterwards, never stored.
"""

from __future__ import annotations

import logging
from email import policy
from email.parser import BytesParser
from io import BytesIO

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpRequest, HttpResponse, QueryDict
from django.utils.datastructures import MultiValueDict

logger = logging.getLogger(__name__)


def _multipart_parse(body: bytes, content_type: str, encoding: str) -> tuple[QueryDict, MultiValueDict]:
    """Return (fields, files) of a multipart/form-data body, with no limit on the fields' size."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("ascii", "replace")
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    fields, files = QueryDict(mutable=True, encoding=encoding), MultiValueDict()
    if not message.is_multipart():
        raise ValueError("the body is not a multipart form")
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        content = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            files.appendlist(str(name), SimpleUploadedFile(filename, content, part.get_content_type()))
        else:
            charset = part.get_content_charset() or encoding
            try:
                fields.appendlist(str(name), content.decode(charset, errors="replace"))
            except LookupError:  # a charset Python does not know
                fields.appendlist(str(name), content.decode(encoding, errors="replace"))
    fields._mutable = False
    return fields, files


def inbound_body_read(request: HttpRequest) -> HttpResponse | None:
    """Read a large inbound post so anymail can parse it; return an error response, or None to go on."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return HttpResponse("Bad Content-Length.\n", status=400, content_type="text/plain")
    limit = settings.INBOUND_MAX_BYTES
    if length > limit:
        logger.warning("Inbound post of %d bytes refused (INBOUND_MAX_BYTES is %d)", length, limit)
        return HttpResponse(f"Mail larger than {limit} bytes.\n", status=413, content_type="text/plain")
    site_limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if site_limit is None or length <= site_limit or hasattr(request, "_body"):
        return None  # Django's own reading does
    body = request.read(length)
    request._body = body
    request._stream = BytesIO(body)
    content_type = request.META.get("CONTENT_TYPE", "")
    if content_type.startswith("multipart/form-data"):
        try:
            request._post, request._files = _multipart_parse(body, content_type, request.encoding or "utf-8")
        except Exception as exc:  # the parser's many ways of saying "not a form"
            logger.warning("Inbound multipart post could not be parsed: %s", str(exc)[:200])
            return HttpResponse("Malformed payload.\n", status=400, content_type="text/plain")
    return None

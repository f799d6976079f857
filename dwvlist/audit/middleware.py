"""Bind the request's user and address for the audit trail and the log lines of the request."""

from __future__ import annotations

from django.conf import settings

from dwvlist.audit.services import audit_actor
from dwvlist.clientip import client_ip
from dwvlist.logs import log_context


class AuditMiddleware:
    """Put after AuthenticationMiddleware: audit_record and log lines name the staff user and address."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        # Only a request with a session can have a staff user; looking up a
        # reader's (there is none) would cost a query for nothing.
        user = getattr(request, "user", None) if settings.SESSION_COOKIE_NAME in request.COOKIES else None
        name = user.get_username() if user is not None and user.is_authenticated else None
        with audit_actor(user=user, ip=client_ip(request)), log_context(user=name):
            return self.get_response(request)

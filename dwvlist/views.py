from __future__ import annotations

import redis
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from dwvlist import heartbeat


@never_cache
@require_GET
def healthz(request):
    """Answer 200 when the database, the broker and a worker all answer."""
    report: dict = {}
    healthy = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        report["database"] = {"status": "ok", "vendor": connection.vendor}
    except Exception as exc:  # any driver error means "down"
        healthy = False
        report["database"] = {"status": "down", "error": str(exc)[:200]}
    try:
        workers = heartbeat.workers_seen()
        report["broker"] = {"status": "ok"}
        if workers:
            report["workers"] = {"status": "ok", "seen": workers}
        else:
            healthy = False
            report["workers"] = {"status": "down", "error": "no worker seen in the last minute"}
    except redis.RedisError as exc:
        healthy = False
        report["broker"] = {"status": "down", "error": str(exc)[:200]}
        report["workers"] = {"status": "unknown", "error": "broker unreachable"}
    report["status"] = "ok" if healthy else "down"
    return JsonResponse(report, status=200 if healthy else 503)


# Our own error pages, with the staff navigation for staff -----------------------


# Set on the request so the staff navigation (issues.navigation) shows on an error page at any path.
ERROR_PAGE_ATTRIBUTE = "dwvlist_error_page"


def _error_page(request, *, template: str, status: int, context: dict | None = None):
    setattr(request, ERROR_PAGE_ATTRIBUTE, True)
    return render(request, template, context or {}, status=status)


def error_forbidden(request, exception=None):
    """Explain a refusal in words, with the way back (handler403)."""
    reason = str(exception) if exception is not None and str(exception) else ""
    return _error_page(request, template="403.html", status=403, context={"reason": reason})


def error_not_found(request, exception=None):
    """Answer an unknown address with our own page (handler404)."""
    return _error_page(request, template="404.html", status=404)


def error_server(request):
    """Answer a crash with our own page; plain if even that cannot be drawn (handler500)."""
    try:
        return _error_page(request, template="500.html", status=500)
    except Exception:  # the database or a template may be what failed: draw without them
        from django.http import HttpResponseServerError
        from django.template import loader

        return HttpResponseServerError(loader.get_template("500_plain.html").render())

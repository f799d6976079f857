from __future__ import annotations

import redis
from django.conf import settings
from django.db import connection
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from dwvlist import heartbeat
from dwvlist.clientip import client_ip
from dwvlist.metrics import MetricsRegistry, metrics_allowed


def _failure(exc: Exception, *, detailed: bool) -> dict:
    # The error's own words can name hosts, users and paths: only for whoever holds HEALTHZ_TOKEN.
    return {"error": str(exc)[:200]} if detailed else {}


def _detailed(request) -> bool:
    token = settings.HEALTHZ_TOKEN
    return bool(token) and constant_time_compare(request.GET.get("token", ""), token)


@never_cache
@require_GET
def healthz(request):
    """Answer 200 when the database, the broker and a worker all answer; else 503 naming what is down.

    Also says whether beat runs. The errors' text is given only with ?token=HEALTHZ_TOKEN.
    """
    detailed = _detailed(request)
    report: dict = {}
    healthy = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        report["database"] = {"status": "ok", "vendor": connection.vendor}
    except Exception as exc:  # any driver error means "down"
        healthy = False
        report["database"] = {"status": "down", **_failure(exc, detailed=detailed)}
    try:
        workers = heartbeat.workers_seen()
        report["broker"] = {"status": "ok"}
        if workers:
            report["workers"] = {"status": "ok", "seen": workers}
        else:
            healthy = False
            report["workers"] = {"status": "down", "error": "no worker seen in the last minute"}
        # Reported, not counted: web and workers serve without beat for a
        # while, but scheduled issues wait and the reaper does not run.
        beats = heartbeat.beats_seen()
        if beats:
            report["beat"] = {"status": "ok", "seen": beats}
        else:
            report["beat"] = {"status": "missing", "error": "no beat seen in the last minute"}
    except redis.RedisError as exc:
        healthy = False
        report["broker"] = {"status": "down", **_failure(exc, detailed=detailed)}
        report["workers"] = {"status": "unknown", "error": "broker unreachable"}
        report["beat"] = {"status": "unknown", "error": "broker unreachable"}
    report["status"] = "ok" if healthy else "down"
    return JsonResponse(report, status=200 if healthy else 503)


@never_cache
@require_GET
def metrics(request, *, collectors):
    """Answer the Prometheus text format to an allowed scraper; a 404 to anyone else."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    allowed = metrics_allowed(authorization=request.headers.get("Authorization", ""), client_ip=client_ip(request))
    if not allowed:
        raise Http404
    return HttpResponse(generate_latest(MetricsRegistry(collectors)), content_type=CONTENT_TYPE_LATEST)


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

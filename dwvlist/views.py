from __future__ import annotations

import redis
from django.conf import settings
from django.db import connection
from django.http import Http404, HttpResponse, JsonResponse
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

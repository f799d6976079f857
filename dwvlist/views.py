from __future__ import annotations

import redis
from django.db import connection
from django.http import JsonResponse
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

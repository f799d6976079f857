"""gunicorn's settings for dwvlist, read from the environment (used by systemd, the image and compose).

GUNICORN_BIND       where to listen (default 127.0.0.1:8000; the image sets 0.0.0.0:8000)
WEB_CONCURRENCY     worker processes (default 2 x CPUs + 1, at most 8)
GUNICORN_TIMEOUT    seconds a request may take before its worker is restarted (default 60)

Sync workers: every request is short database work (sending is Celery's), so
a process per request in flight is the simple, robust choice; the proxy in
front buffers slow clients. The CSV export streams rows, and an import upload
of up to 100 MB is read by the proxy first, so 60 s is ample.
"""

import multiprocessing
import os

bind = [os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")]
workers = int(os.environ.get("WEB_CONCURRENCY", min(multiprocessing.cpu_count() * 2 + 1, 8)))
worker_class = "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 5
# A worker is replaced after this many requests, a guard against slow leaks.
max_requests = 2000
max_requests_jitter = 200
# The proxy's X-Forwarded-Proto sets wsgi.url_scheme only from these
# addresses; Django's own BEHIND_TLS_PROXY / TRUSTED_PROXIES settings decide
# what the application trusts.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
accesslog = "-"
errorlog = "-"
# No control socket: its default path is per user, so two sites (or a test
# run beside a live one) would share it. Reload with SIGHUP (systemctl reload).
control_socket_disable = True

"""The Celery application, configured from Django settings (CELERY_*)."""

import os
from pathlib import Path

from celery import Celery
from kombu import Exchange, Queue

from dwvlist.envvars import env_file_load

env_file_load(base_dir=Path(__file__).resolve().parent.parent)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dwvlist.settings")

app = Celery("dwvlist")
app.config_from_object("django.conf:settings", namespace="CELERY")

# Two queues: "bulk" carries the sending batches, "default" everything else,
# so confirmation mails never wait behind a 100k-recipient issue.
app.conf.task_queues = (
    Queue("default", Exchange("default"), routing_key="default"),
    Queue("bulk", Exchange("bulk"), routing_key="bulk"),
)
app.conf.task_routes = {"issues.tasks.send_batch": {"queue": "bulk"}}
app.autodiscover_tasks()

import dwvlist.heartbeat  # noqa: E402,F401  (connects the worker signals)

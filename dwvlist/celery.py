"""The Celery application, configured from Django settings (CELERY_*)."""

import os

from celery import Celery
from kombu import Exchange, Queue

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
# Each app's tasks.py, and those of the subpackages that have their own.
app.autodiscover_tasks()
app.autodiscover_tasks(["issues.delivery", "issues.feedback", "subscriptions.imports", "subscriptions.staff_jobs"])


def task_queue(name: str, *args, countdown: float | None = None) -> None:
    """Queue the task registered as `name` with these arguments.

    Services queue work through this instead of importing the tasks
    modules, which import the services: no import cycle, lazy or not.
    """
    if name not in app.tasks:
        app.loader.import_default_modules()  # a web process has not imported the tasks modules yet
    app.tasks[name].apply_async(args, countdown=countdown)


import dwvlist.heartbeat  # noqa: E402,F401  (connects the worker signals)

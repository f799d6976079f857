"""The Celery application, configured from Django settings (CELERY_*)."""

import logging.config
import os
from pathlib import Path

from celery import Celery
from celery.signals import setup_logging, task_postrun, task_prerun
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
# Each app's tasks.py, and those of the subpackages that have their own.
app.autodiscover_tasks()
app.autodiscover_tasks(
    [
        "issues.delivery",
        "issues.feedback",
        "issues.feedback.bounces",
        "subscriptions.imports",
        "subscriptions.staff_jobs",
    ]
)
# Workers and beat log through settings.LOGGING like the web processes: a
# receiver of setup_logging stops Celery from adding its own handlers to
# the root logger (which printed lines twice, in local time), and stdout
# is left alone, so a print stays a print.
app.conf.worker_hijack_root_logger = False
app.conf.worker_redirect_stdouts = False


@setup_logging.connect
def _logging_from_settings(**kwargs) -> None:
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


@task_prerun.connect
def _log_context_task_start(task_id=None, **kwargs) -> None:
    # A pool process runs task after task in one thread: each starts with
    # no context fields left over from the one before.
    from dwvlist.logs import log_context_task_start

    log_context_task_start(task_id or "")


@task_postrun.connect
def _log_context_task_end(task_id=None, **kwargs) -> None:
    from dwvlist.logs import log_context_task_end

    log_context_task_end(task_id or "")


def task_queue(name: str, *args, countdown: float | None = None) -> None:
    """Queue the task registered as `name` with these arguments.

    Services queue work through this instead of importing the tasks
    modules, which import the services: no import cycle, lazy or not.
    """
    if name not in app.tasks:
        app.loader.import_default_modules()  # a web process has not imported the tasks modules yet
    app.tasks[name].apply_async(args, countdown=countdown)


import dwvlist.heartbeat  # noqa: E402,F401  (connects the worker signals)

"""Celery tasks of the issue's life (the engine's own are in issues/delivery/tasks.py)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="issues.tasks.start_due_issues", ignore_result=True)
def start_due_issues() -> list[int]:
    """Start scheduled issues whose time has come (run by beat)."""
    from issues.services import issues_start_due

    return issues_start_due()


@shared_task(name="issues.tasks.dashboard_refresh", ignore_result=True)
def dashboard_refresh() -> None:
    """Count the editor home's figures afresh for every visitor (run by beat)."""
    from issues.selectors import dashboard_refresh as refresh

    refresh()

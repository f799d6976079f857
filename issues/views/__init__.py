"""The editor's pages, a module for each part of an issue's life.

compose.py: write it, with a live preview and autosave; preview.py: read
it as a reader will, mail a test; sending.py: schedule, send, watch,
pause, cancel; reports.py: the dashboard, each issue's report.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404

from issues.models import Issue


def issue_or_404(issue_id: int) -> Issue:
    """Return the issue with its lists, or raise Http404."""
    return get_object_or_404(Issue.objects.prefetch_related("lists"), pk=issue_id)

"""The audit trail in the editor area, for admins."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from dwvlist.access import audit_required
from dwvlist.audit.forms import AuditFilterForm
from dwvlist.audit.selectors import audit_actors, audit_entries

AUDIT_PAGE_SIZE = 50


@never_cache
@require_GET
@audit_required
def entries(request):
    """List the audit trail, newest first, filtered by action, who, object and dates."""
    form = AuditFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_bound and form.is_valid() else {}
    found = audit_entries(**{key: value for key, value in filters.items() if value})
    page = Paginator(found, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "actors": audit_actors(),
        "query": query.urlencode(),
        "status": 400 if form.is_bound and not form.is_valid() else 200,
    }
    return render(request, "audit/entries.html", context, status=context["status"])

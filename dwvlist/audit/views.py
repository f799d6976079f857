"""The audit trail in the editor area, for admins."""

from __future__ import annotations

import functools

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from dwvlist.audit.forms import AuditFilterForm
from dwvlist.audit.selectors import audit_actors, audit_entries

AUDIT_PAGE_SIZE = 50


def _admins_only(view):
    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not (user.is_active and user.is_staff and user.has_perm("audit.view_auditentry")):
            raise PermissionDenied("Only admins read the audit trail.")
        return view(request, *args, **kwargs)

    return wrapper


@never_cache
@require_GET
@_admins_only
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

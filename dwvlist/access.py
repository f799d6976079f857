"""Who may do what in the staff area: one place, on the permission codenames that the roles hold.

The Editors and Admins groups (subscriptions/roles.py) are given these
permissions; a view asks for a permission, never for a group name, so a
role changes in one place. An inactive account is refused everywhere.
"""

from __future__ import annotations

import functools

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied

# Write, preview, schedule and send issues: Editors and Admins.
EDITOR = "issues.change_issue"
# Read and answer readers' comments: Editors and Admins.
COMMENTS = "issues.change_comment"
# Manage subscribers: add, import, export. Admins only.
SUBSCRIBERS = "subscriptions.add_subscriber"
# See and export subscribers' addresses. Admins only.
SUBSCRIBERS_READ = "subscriptions.view_subscriber"
# Read the audit trail. Admins only (nobody may change it).
AUDIT = "audit.view_auditentry"
# Search readers and read a reader's page (subscriptions, deliveries, events), without acting:
# Editors and Admins. Acting on a reader (unsubscribe, suppress, erase) needs SUBSCRIBERS.
READERS = "subscriptions.browse_subscriber"


def user_may(user, permission: str) -> bool:
    """Return whether the user is an active staff member holding the permission."""
    if not (user.is_authenticated and user.is_active):
        return False
    return (user.is_staff or user.is_superuser) and user.has_perm(permission)


def permission_required(permission: str, *, refusal: str):
    """Return a view decorator: anonymous users go to log in, staff without the permission get 403."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not user_may(request.user, permission):
                raise PermissionDenied(refusal)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


editor_required = permission_required(EDITOR, refusal="The editor area is for editors and admins.")
comments_required = permission_required(COMMENTS, refusal="Readers' comments are for editors and admins.")
subscribers_required = permission_required(SUBSCRIBERS, refusal="Only admins manage subscribers.")
subscribers_read_required = permission_required(SUBSCRIBERS_READ, refusal="Only admins see subscribers.")
audit_required = permission_required(AUDIT, refusal="Only admins read the audit trail.")
readers_required = permission_required(READERS, refusal="The subscribers screen is for editors and admins.")

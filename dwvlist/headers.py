"""Response headers every page carries beyond Django's own and django-csp's."""

from __future__ import annotations

from django.conf import settings


class PermissionsPolicyMiddleware:
    """Add PERMISSIONS_POLICY as the Permissions-Policy header, unless the view set its own."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if settings.PERMISSIONS_POLICY and "Permissions-Policy" not in response:
            response["Permissions-Policy"] = settings.PERMISSIONS_POLICY
        return response

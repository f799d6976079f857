"""The REST API at /api/v1/: its routers, its OpenAPI document, its docs page."""

from __future__ import annotations

import functools

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.urls import path, re_path
from ninja import NinjaAPI
from ninja.openapi.views import openapi_view

from api import errors, events, issues, lists, subscribers, suppressions
from api.auth import Scoped
from api.idempotency import HEADER, idempotent
from api.models import SCOPES
from api.parser import StrictParser

DESCRIPTION = (
    "The dwvlist REST API. Authenticate every call with `Authorization: Bearer <token>`; admins create "
    "tokens at /editor/api-tokens/. Each call needs one of the scopes its security names, and the token's user "
    "needs the permissions its description names. Errors are RFC 9457 problem details. Lists are paginated by "
    "cursor: pass `next_cursor` back as `cursor` until it is null.\n\nScopes:\n\n"
    + "\n".join(f"- `{name}`: {text}" for name, text in SCOPES.items())
)
SCHEME = "bearerToken"


class DwvlistApi(NinjaAPI):
    def get_openapi_operation_id(self, operation) -> str:
        """Name each operation by its function (`subscribers_create`): unique across the routers."""
        return operation.view_func.__name__

    def _operations(self) -> dict:
        found = {}
        for bound in self._get_bound_routers():
            for path_view in bound.path_operations.values():
                for operation in path_view.operations:
                    found[self.get_openapi_operation_id(operation)] = operation
        return found

    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        """Return the document with problem+json errors, the scopes each call needs, and the Idempotency-Key."""
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        operations = self._operations()
        components = schema.setdefault("components", {})
        components["securitySchemes"] = {SCHEME: {"type": "http", "scheme": "bearer"}}
        for item in schema["paths"].values():
            for details in item.values():
                operation = operations[details["operationId"]]
                auth = operation.auth_callbacks[0]
                details["security"] = [{SCHEME: [scope]} for scope in auth.scopes]
                needs = " or ".join(f"`{s}`" for s in auth.scopes)
                permissions = ", ".join(f"`{p}`" for p in auth.permissions)
                details["description"] = (
                    details.get("description", "") + f"\n\nScope: {needs}. Permissions: {permissions}."
                ).strip()
                for status, response in details["responses"].items():
                    if int(status) >= 400 and "application/json" in response.get("content", {}):
                        response["content"] = {errors.PROBLEM_TYPE: response["content"]["application/json"]}
                if idempotent in getattr(operation, "_run_decorators", []):
                    details.setdefault("parameters", []).append(
                        {
                            "in": "header",
                            "name": HEADER,
                            "required": False,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
                            "description": "Repeat a call with the same key and body: you get the first answer "
                            "and nothing changes. The same key with another body answers 422.",
                        }
                    )
        return schema


api = DwvlistApi(
    title="dwvlist API",
    version="1",
    description=DESCRIPTION,
    urls_namespace="api",
    docs_url=None,
    parser=StrictParser(),
)
errors.install(api)
for module in (lists, subscribers, issues, suppressions, events):
    api.add_router("", module.router)


def _operations_have_scopes() -> None:
    # A call without a scoped auth would be open to anyone: refuse to start.
    for operation_id, operation in api._operations().items():
        if not operation.auth_callbacks or not all(isinstance(a, Scoped) for a in operation.auth_callbacks):
            raise RuntimeError(f"API operation {operation_id} has no scoped auth")


def _staff_unless_debug(view):
    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if not settings.DEBUG:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not (request.user.is_active and request.user.is_staff):
                raise PermissionDenied("The API's docs are for staff.")
        return view(request, *args, **kwargs)

    return wrapper


@_staff_unless_debug
def docs(request):
    """Show the browsable docs (Swagger UI, served from our own static files)."""
    return openapi_view(request, api=api)


def not_found(request, rest: str = ""):
    """Answer any other path under /api/v1/ with a problem, not the site's HTML page."""
    return errors.problem_response(404, "No such API path; the paths are in /api/v1/openapi.json.")


_operations_have_scopes()
app_name = "api"
urlpatterns = [path("docs", docs, name="docs"), *api.urls[0], re_path(r"^(?P<rest>.+)$", not_found, name="not_found")]

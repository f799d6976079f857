"""Bearer tokens: every operation names the scope and the permissions it needs.

A call is allowed only when the token is active, its rate allows it, the
token holds the scope, and the token's user is active staff holding the
permissions (the same codenames the web pages check; see dwvlist/access.py).
Session cookies are ignored: there is no CSRF surface.
"""

from __future__ import annotations

from django.http import HttpRequest
from ninja.security import HttpBearer

from api import services
from api.errors import ApiProblem
from api.models import SCOPES, ApiToken
from api.parser import nul_refuse
from dwvlist.access import user_may

_CACHED = "_dwvlist_api_token"


def request_token(request: HttpRequest) -> ApiToken | None:
    """Return the active token the request's Authorization header carries, looked up once per request."""
    if hasattr(request, _CACHED):
        return getattr(request, _CACHED)
    token = None
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        token = services.api_token_authenticate(secret=value.strip())
    setattr(request, _CACHED, token)
    return token


def token_allows(token: ApiToken, *, scopes: tuple[str, ...], permissions: tuple[str, ...]) -> bool:
    """Return whether the token may make a call needing one of the scopes and all the permissions."""
    user = token.user
    return any(scope in token.scopes for scope in scopes) and all(user_may(user, p) for p in permissions)


class Scoped(HttpBearer):
    """The auth of one operation: a bearer token holding one of `scopes` whose user has `permissions`."""

    def __init__(self, scopes: tuple[str, ...], permissions: tuple[str, ...]) -> None:
        unknown = [s for s in scopes if s not in SCOPES]
        if unknown or not scopes:
            raise ValueError(f"unknown scopes {unknown}")
        super().__init__()
        self.scopes = scopes
        self.permissions = permissions

    def __call__(self, request: HttpRequest):
        token = request_token(request)
        if token is None:
            return None  # ninja answers 401
        wait = services.api_rate_check(token=token)
        if wait:
            raise ApiProblem(
                429,
                f"This token made more than its calls per minute; try again in {wait} seconds.",
                headers={"Retry-After": str(wait)},
            )
        if not token_allows(token, scopes=self.scopes, permissions=self.permissions):
            scope_missing = not any(scope in token.scopes for scope in self.scopes)
            needs = "the scope " + " or ".join(self.scopes)
            if self.permissions:
                needs += f" and the permissions {', '.join(self.permissions)}"
            why = "the token lacks that scope" if scope_missing else "the token's user lacks a permission"
            raise ApiProblem(403, f"This call needs {needs}; {why}.")
        nul_refuse(request)
        return token

    def authenticate(self, request: HttpRequest, token: str):  # pragma: no cover (__call__ does it)
        raise NotImplementedError


def needs(scope: str | tuple[str, ...], *permissions: str) -> Scoped:
    """Return the auth for an operation needing the scope (or one of several) and the user's permissions."""
    return Scoped(scope if isinstance(scope, tuple) else (scope,), permissions)

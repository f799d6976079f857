"""Every error as RFC 9457 problem details (application/problem+json)."""

from __future__ import annotations

import json
import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpResponse
from ninja import Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.responses import NinjaJSONEncoder

logger = logging.getLogger(__name__)

PROBLEM_TYPE = "application/problem+json"
TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Too large",
    422: "Invalid input",
    429: "Too many requests",
    500: "Server error",
}
# The statuses every operation may answer with a problem, and the OpenAPI names them.
PROBLEM_STATUSES = frozenset({400, 401, 403, 404, 409, 413, 422, 429})


class FieldError(Schema):
    field: str
    message: str


class Problem(Schema):
    type: str = "about:blank"
    title: str
    status: int
    detail: str = ""
    errors: list[FieldError] = []


class ApiProblem(Exception):
    """Raise to answer a problem; `errors` name the fields at fault."""

    def __init__(
        self,
        status: int,
        detail: str = "",
        *,
        errors: list[dict] | None = None,
        headers: dict[str, str] | None = None,
        title: str = "",
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}
        self.title = title or TITLES.get(status, "Error")


def problem_response(
    status: int, detail: str = "", *, errors=(), headers=None, title: str = "", problem_type: str = "about:blank"
) -> HttpResponse:
    """Return an application/problem+json response."""
    body = {"type": problem_type, "title": title or TITLES.get(status, "Error"), "status": status, "detail": detail}
    body["errors"] = [{"field": e["field"], "message": e["message"]} for e in errors]
    response = HttpResponse(json.dumps(body, cls=NinjaJSONEncoder), status=status, content_type=PROBLEM_TYPE)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def request_too_big() -> HttpResponse:
    """Return the answer to a body over DATA_UPLOAD_MAX_MEMORY_SIZE."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return problem_response(413, f"The request body is larger than {limit:,} bytes; send less at a time.")


def _field_name(loc) -> str:
    # Drop where ninja found it (body, query, path): the name is what the caller wrote.
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    if parts and parts[0] == "payload":
        parts = parts[1:]
    return ".".join(parts) or "(request)"


def validation_errors(exc: DjangoValidationError, *, prefix: str = "") -> list[dict]:
    """Return a Django ValidationError's messages as field errors."""
    if hasattr(exc, "error_dict"):
        out = []
        for name, errors in exc.message_dict.items():
            field = f"{prefix}{name}" if name != "__all__" else (prefix.rstrip(".") or "(request)")
            out.extend({"field": field, "message": message} for message in errors)
        return out
    return [{"field": prefix.rstrip(".") or "(request)", "message": m} for m in exc.messages]


def install(api) -> None:
    """Answer every error the API can meet as problem details."""

    @api.exception_handler(ApiProblem)
    def _problem(request, exc: ApiProblem):
        return problem_response(exc.status, exc.detail, errors=exc.errors, headers=exc.headers, title=exc.title)

    @api.exception_handler(ValidationError)
    def _invalid(request, exc: ValidationError):
        errors = [{"field": _field_name(e.get("loc", ())), "message": e.get("msg", "Invalid.")} for e in exc.errors]
        return problem_response(422, "The request has invalid fields; each is named below.", errors=errors)

    @api.exception_handler(DjangoValidationError)
    def _django_invalid(request, exc: DjangoValidationError):
        return problem_response(422, " ".join(exc.messages), errors=validation_errors(exc))

    @api.exception_handler(AuthenticationError)
    def _unauthenticated(request, exc):
        return problem_response(
            401,
            "Send a valid, unrevoked API token as `Authorization: Bearer <token>`.",
            headers={"WWW-Authenticate": 'Bearer realm="dwvlist"'},
        )

    @api.exception_handler(PermissionDenied)
    def _forbidden(request, exc):
        return problem_response(403, str(exc) or "Not allowed.")

    @api.exception_handler(Http404)
    def _not_found(request, exc):
        return problem_response(404, str(exc) or "No such resource.")

    @api.exception_handler(HttpError)
    def _http_error(request, exc: HttpError):
        return problem_response(exc.status_code, str(exc))

    @api.exception_handler(RequestDataTooBig)
    def _too_big(request, exc):
        return request_too_big()

    @api.exception_handler(Exception)
    def _unexpected(request, exc):
        logger.exception("api error on %s %s", request.method, request.path)
        return problem_response(500, "Something went wrong on our side; it has been logged.")

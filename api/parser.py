"""Request parsing that refuses what no column can hold: NUL characters, anywhere."""

from __future__ import annotations

import json

from ninja.parser import Parser

from api.errors import ApiProblem


def _nul_at(value, path: str = "") -> str | None:
    """Return where in the decoded JSON a string holds a NUL character, or None."""
    if isinstance(value, str):
        return path or "(body)" if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _nul_at(key, path) or _nul_at(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_at(item, f"{path}.{index}" if path else str(index))
            if found:
                return found
    return None


def _refuse(field: str):
    return ApiProblem(
        422, "Text cannot contain NUL characters.", errors=[{"field": field, "message": "Contains a NUL character."}]
    )


def nul_refuse(request) -> None:
    """Raise a 422 naming the field if the query or the JSON body holds a NUL character anywhere.

    Called before the parameters are parsed, so the problem names the
    field (the parser's own errors all become a bare 400).
    """
    for key, values in request.GET.lists():
        if "\x00" in key or any("\x00" in v for v in values):
            raise _refuse(key.replace("\x00", ""))
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    body = request.body
    if b"\\u0000" in body or b"\x00" in body:
        try:
            where = _nul_at(json.loads(request.body))
        except ValueError:
            return  # not JSON: the parser answers that
        if where:
            raise _refuse(where)


class StrictParser(Parser):
    def parse_body(self, request):
        data = json.loads(request.body)
        where = _nul_at(data)
        if where:
            raise _refuse(where)
        return data

    def parse_querydict(self, data, list_fields, request):
        for key, values in data.lists():
            if "\x00" in key or any("\x00" in v for v in values):
                raise _refuse(key.replace("\x00", ""))
        return super().parse_querydict(data, list_fields, request)

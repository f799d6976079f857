"""A fixed cast for the API: two lists, an editor, an admin, an outsider, and tokens for each."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from api.models import SCOPES
from api.services import api_token_create
from subscriptions.models import MailingList

ALL_SCOPES = tuple(SCOPES)


@pytest.fixture
def news(db):
    return MailingList.objects.create(
        name="News", slug="news", from_name="The News Desk", from_email="news@example.org", reply_to="desk@example.org"
    )


@pytest.fixture
def notes(db):
    return MailingList.objects.create(
        name="Notes", slug="notes", from_name="Notes", from_email="notes@example.org", double_opt_in=False
    )


def staff_make(username: str, group: str | None) -> User:
    user = User.objects.create_user(username, f"{username}@staff.example.org", "a-long-test-password-42", is_staff=True)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def cast(db) -> dict[str, User]:
    return {
        "editor": staff_make("eddie", "Editors"),
        "admin": staff_make("ada", "Admins"),
        "outsider": staff_make("otto", None),  # staff, but in no group
    }


class ApiClient:
    """A client that sends one bearer token and JSON, and reads JSON back."""

    def __init__(self, secret: str | None) -> None:
        self.client = Client(raise_request_exception=False)
        self.secret = secret

    def call(self, method: str, path: str, body=None, *, headers: dict | None = None, raw: bytes | None = None):
        extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in (headers or {}).items()}
        if self.secret is not None:
            extra["HTTP_AUTHORIZATION"] = f"Bearer {self.secret}"
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        kwargs = {"content_type": "application/json"} if data is not None else {}
        if data is not None:
            kwargs["data"] = data
        return getattr(self.client, method.lower())(f"/api/v1{path}", **kwargs, **extra)

    def get(self, path, **kw):
        return self.call("get", path, **kw)

    def post(self, path, body=None, **kw):
        return self.call("post", path, body if body is not None else {}, **kw)

    def patch(self, path, body=None, **kw):
        return self.call("patch", path, body if body is not None else {}, **kw)

    def delete(self, path, **kw):
        return self.call("delete", path, **kw)


@pytest.fixture
def token_for(cast):
    """Return a function giving an ApiClient for a role with the scopes (all by default)."""

    def make(role: str = "admin", *scopes: str) -> ApiClient:
        created = api_token_create(user=cast[role], name=f"{role} test", scopes=scopes or ALL_SCOPES)
        return ApiClient(created.secret)

    return make


@pytest.fixture
def admin_api(token_for) -> ApiClient:
    return token_for("admin")


@pytest.fixture
def editor_api(token_for) -> ApiClient:
    return token_for("editor")


@pytest.fixture
def eager_celery():
    """Run queued tasks in the calling process (their mail goes to the outbox)."""
    from dwvlist.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False

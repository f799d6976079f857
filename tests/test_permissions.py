"""Every URL in the URLconf, tried as every role, with the status each must get.

MATRIX names each URL pattern (namespace:name, or the route for an unnamed
one) and gives the method, how to fill its arguments, and the expected
status for: anonymous, a reader holding a valid token (None where the URL
takes no token), an editor and an admin (group Admins, not superuser).
A pattern missing from MATRIX fails test_every_url_has_an_entry: add one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import pytest
from django.contrib.auth.models import Group, User
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from api.models import SCOPES
from api.services import api_token_create
from api.urls import api as ninja_api
from issues.models import Issue
from subscriptions.files import files_storage
from subscriptions.models import ImportJob, MailingList, StaffJob, Subscriber, Subscription, Suppression
from subscriptions.tokens import preferences_token_make, unsubscribe_token_make

LOGIN = 302  # anonymous users are sent to the login page
ROLES = ["anonymous", "reader", "editor", "admin"]


@dataclass
class Case:
    method: str
    anonymous: int
    reader: int | None
    editor: int
    admin: int
    kwargs: str = ""  # which arguments the route takes, filled in by _kwargs
    data: dict = field(default_factory=dict)


def staff(method="get", *, editor=200, admin=200, kwargs="", anonymous=LOGIN, **extra) -> Case:
    return Case(method, anonymous, None, editor, admin, kwargs, **extra)


def public(method="get", status=200, *, kwargs="", **extra) -> Case:
    return Case(method, status, None, status, status, kwargs, **extra)


def token(method="get", *, bad=404, good=200, kwargs="token", **extra) -> Case:
    """A reader's link: a forged token as anonymous, the reader's own token as reader."""
    return Case(method, bad, good, bad, bad, kwargs, **extra)


ADMINS_ONLY = {"editor": 403}
MATRIX: dict[str, Case] = {
    "home": public(),
    "healthz": public(status=503),  # no worker runs in these tests
    "metrics": public(status=404),  # no METRICS_TOKEN or METRICS_ALLOWED_IPS: hidden from everyone
    "audit:entries": staff(**ADMINS_ONLY),
    "admin:*": staff(editor=403, admin=200),
    # Subscribers: admins only.
    "staff:import": staff(**ADMINS_ONLY),
    "staff:import_job": staff(kwargs="job", **ADMINS_ONLY),
    "staff:import_job_json": staff(kwargs="job", **ADMINS_ONLY),
    "staff:import_job_resume": staff("post", kwargs="job", editor=403, admin=302),
    "staff:import_job_errors": staff(kwargs="job", **ADMINS_ONLY),
    "staff:export": staff(**ADMINS_ONLY),
    # The subscribers screen: editors read, admins act.
    "staff:readers": staff(),
    "staff:reader": staff(kwargs="reader"),
    "staff:reader_action": staff(kwargs="reader_action", **ADMINS_ONLY),
    "staff:job": staff(kwargs="staffjob", **ADMINS_ONLY),
    "staff:job_json": staff(kwargs="staffjob", **ADMINS_ONLY),
    "staff:job_download": staff(kwargs="staffjob", **ADMINS_ONLY),
    "staff:job_restart": staff("post", kwargs="staffjob", editor=403, admin=302),
    # API tokens: whoever manages staff accounts (admins).
    "api_tokens:list": staff(**ADMINS_ONLY),
    "api_tokens:revoke": staff("post", kwargs="apitoken", editor=403, admin=302),
    # The API's document is public (integrators start from it); its browsable
    # docs are for staff when DEBUG is off, as in these tests. Its calls are in
    # API_MATRIX below.
    "api:openapi-json": public(),
    "api:docs": staff(),
    "api:api-root": public(status=404),
    "api:not_found": public(status=404, kwargs="rest"),
    # The editor area.
    "editor:home": staff(),
    "editor:login": public(),
    "editor:logout": public("post", status=302),
    "editor:issue_new": staff(),
    "editor:issue_preview": staff(kwargs="issue"),
    "editor:issue_draft_preview": staff("post", editor=400, admin=400),  # no preview slot given
    "editor:issue_draft_preview_html": staff(kwargs="slot"),
    "editor:issue_autosave_new": staff("post", editor=400, admin=400),  # no title given
    "editor:issue_autosave": staff("post", kwargs="issue", editor=400, admin=400),
    "editor:issue_preview_html": staff(kwargs="issue"),
    "editor:issue_edit": staff(kwargs="issue"),
    "editor:issue_test_send": staff("post", kwargs="issue", editor=400, admin=400),  # no addresses given
    "editor:issue_schedule": staff("post", kwargs="issue", editor=200, admin=200),
    "editor:issue_unschedule": staff("post", kwargs="issue", editor=302, admin=302),
    "editor:issue_send": staff(kwargs="issue"),
    "editor:issue_progress": staff(kwargs="issue"),
    "editor:issue_progress_json": staff(kwargs="issue"),
    "editor:issue_pause": staff("post", kwargs="issue", editor=302, admin=302),
    "editor:issue_resume": staff("post", kwargs="issue", editor=302, admin=302),
    "editor:issue_cancel": staff("post", kwargs="issue", editor=302, admin=302),
    "editor:issue_report": staff(kwargs="issue"),
    "editor:issue_failures_csv": staff(kwargs="issue"),
    "editor:issue_retry_failed": staff("post", kwargs="issue", editor=302, admin=302),
    "comments:list": staff(),
    "comments:detail": staff(kwargs="comment", editor=404, admin=404),
    "comments:mark": staff("post", kwargs="comment", editor=404, admin=404),
    "comments:answer": staff("post", kwargs="comment", editor=404, admin=404),
    "comments:publish": staff("post", kwargs="comment", editor=404, admin=404),
    "comments:request": staff("post", kwargs="comment", editor=404, admin=404),
    # The public archive.
    "archive:index": public(),
    "archive:list": public(kwargs="list"),
    "archive:feed": public(kwargs="list"),
    "archive:issue_link": public(status=404, kwargs="issue_link"),  # the issue is not sent
    "archive:issue": public(status=404, kwargs="archive_issue"),
    # Reader pages.
    "subscriptions:list_detail": public(kwargs="list"),
    "subscriptions:subscribe": public(),
    "subscriptions:check_inbox": public(),
    # Confirmation links carry their own signed state; a reader's valid one
    # is tried in tests/subscriptions/test_views.py.
    "subscriptions:confirm": token(good=None),
    "subscriptions:confirm_address": token(good=None),
    "subscriptions:unsubscribe": token(kwargs="unsubscribe_token"),
    "subscriptions:resubscribe": token("post", kwargs="unsubscribe_token"),
    "subscriptions:preferences": token(),
    "subscriptions:preferences_address": token("post", bad=404, good=200, data={"new_email": "new@example.org"}),
    "subscriptions:preferences_data": token(),
    "subscriptions:preferences_erase": token(),
    # Returned mail over HTTP: a bearer token, not a role (off here: no BOUNCE_HTTP_TOKEN).
    "bounces:receive": public("post", status=403),
    # Tracked links of the SMTP path: a forged token leads nowhere, whoever follows it.
    "bounces:open": public(status=404, kwargs="token"),
    "bounces:click": public(status=404, kwargs="token"),
}


@dataclass
class ApiCase:
    """An API call: its scope, and the status for a token with that scope held by an editor and by an admin."""

    method: str
    scope: str
    editor: int
    admin: int
    kwargs: str = ""
    body: dict | None = None
    query: str = ""


def api(method: str, scope: str, *, editor: int, admin: int, kwargs: str = "", body=None, query="") -> ApiCase:
    return ApiCase(method, scope, editor, admin, kwargs, body, query)


def _future() -> str:
    return (timezone.now() + timezone.timedelta(days=1)).isoformat()


SUBSCRIBERS_READ, SUBSCRIBERS_WRITE = "subscribers:read", "subscribers:write"
ISSUES_READ, ISSUES_WRITE, ISSUES_SEND, REPORTS = "issues:read", "issues:write", "issues:send", "reports:read"
BOTH_200 = {"editor": 200, "admin": 200}
ADMIN_ONLY_200 = {"editor": 403, "admin": 200}
API_MATRIX: dict[str, ApiCase] = {
    "api:lists_list": api("get", SUBSCRIBERS_READ, **BOTH_200),
    "api:lists_get": api("get", ISSUES_READ, kwargs="list", **BOTH_200),
    "api:lists_create": api(
        "post",
        SUBSCRIBERS_WRITE,
        editor=403,
        admin=201,
        body={"name": "Zines", "slug": "zines", "from_name": "Zines", "from_email": "zines@example.org"},
    ),
    "api:lists_update": api("patch", SUBSCRIBERS_WRITE, kwargs="list", body={"description": "New."}, **ADMIN_ONLY_200),
    "api:subscribers_list": api("get", SUBSCRIBERS_READ, **ADMIN_ONLY_200),
    "api:subscribers_by_email": api("get", SUBSCRIBERS_READ, query="?email=reader@example.org", **ADMIN_ONLY_200),
    "api:subscribers_get": api("get", SUBSCRIBERS_READ, kwargs="subscriber", **ADMIN_ONLY_200),
    "api:subscribers_create": api(
        "post", SUBSCRIBERS_WRITE, editor=403, admin=201, body={"email": "new@example.org", "lists": ["news"]}
    ),
    "api:subscribers_bulk": api(
        "post", SUBSCRIBERS_WRITE, body={"items": [{"email": "b@example.org", "lists": ["news"]}]}, **ADMIN_ONLY_200
    ),
    "api:subscribers_update": api(
        "patch", SUBSCRIBERS_WRITE, kwargs="subscriber", body={"name": "Rea B"}, **ADMIN_ONLY_200
    ),
    "api:subscribers_unsubscribe": api("post", SUBSCRIBERS_WRITE, kwargs="subscriber", body={}, **ADMIN_ONLY_200),
    "api:subscribers_erase": api("delete", SUBSCRIBERS_WRITE, kwargs="subscriber", editor=403, admin=204),
    "api:issues_list": api("get", ISSUES_READ, **BOTH_200),
    "api:issues_create": api(
        "post", ISSUES_WRITE, editor=201, admin=201, body={"title": "T", "body": "B.", "lists": ["news"]}
    ),
    "api:issues_get": api("get", ISSUES_READ, kwargs="issue", **BOTH_200),
    "api:issues_update": api("patch", ISSUES_WRITE, kwargs="issue", body={"title": "New title"}, **BOTH_200),
    "api:issues_preview": api("get", ISSUES_READ, kwargs="issue", **BOTH_200),
    "api:issues_test_send": api(
        "post", ISSUES_SEND, kwargs="issue", editor=202, admin=202, body={"addresses": ["t@example.org"]}
    ),
    "api:issues_schedule": api("post", ISSUES_SEND, kwargs="issue", body={"when": "FUTURE"}, **BOTH_200),
    "api:issues_unschedule": api("post", ISSUES_SEND, kwargs="issue", body={}, **BOTH_200),
    "api:issues_send": api("post", ISSUES_SEND, kwargs="issue", body={}, **BOTH_200),
    "api:issues_pause": api("post", ISSUES_SEND, kwargs="issue", body={}, **BOTH_200),
    "api:issues_resume": api("post", ISSUES_SEND, kwargs="issue", body={}, **BOTH_200),
    "api:issues_cancel": api("post", ISSUES_SEND, kwargs="issue", body={}, **BOTH_200),
    "api:issues_progress": api("get", REPORTS, kwargs="issue", **BOTH_200),
    "api:issues_report": api("get", REPORTS, kwargs="issue", **BOTH_200),
    "api:issues_failures": api("get", REPORTS, kwargs="issue", **BOTH_200),
    "api:suppressions_list": api("get", SUBSCRIBERS_READ, **ADMIN_ONLY_200),
    "api:suppressions_add": api("post", SUBSCRIBERS_WRITE, editor=403, admin=201, body={"email": "x@example.org"}),
    "api:suppressions_remove": api("delete", SUBSCRIBERS_WRITE, kwargs="suppression", editor=403, admin=204),
    "api:events_list": api("get", REPORTS, **BOTH_200),
}
API_ROLES = ["no token", "session only", "other scopes", "editor", "admin"]

# The ESP webhooks are checked apart: anymail authenticates them (basic
# auth, signatures), not our roles, so anyone's unauthenticated post must be
# refused. An ESP that is not configured answers 500, which refuses too.


def url_patterns() -> list[tuple[str, str]]:
    """Return (key, route) for every pattern; the admin site counts as one."""
    found = []

    def walk(patterns, prefix: str, namespace: str | None) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = ":".join(filter(None, [namespace, pattern.namespace])) or None
                if inner == "admin":
                    found.append(("admin:*", prefix + str(pattern.pattern)))
                    continue
                walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
            elif isinstance(pattern, URLPattern):
                route = prefix + str(pattern.pattern)
                key = f"{namespace}:{pattern.name}" if namespace and pattern.name else (pattern.name or route)
                found.append((key, route))

    walk(get_resolver().url_patterns, "", None)
    return found


def test_every_url_has_an_entry():
    missing = [
        f"{key} ({route})"
        for key, route in url_patterns()
        if key not in MATRIX and key not in API_MATRIX and not key.startswith("webhooks:")
    ]
    assert not missing, "Add these to MATRIX in tests/test_permissions.py:\n" + "\n".join(missing)


@pytest.fixture
def world(db):
    news = MailingList.objects.create(name="News", slug="news", from_name="News", from_email="news@example.org")
    reader = Subscriber.objects.create(email="reader@example.org", name="Rea")
    Subscription.objects.create(
        subscriber=reader, mailing_list=news, status="active", consent_source="form", confirmed_at=timezone.now()
    )
    issue = Issue.objects.create(title="First", body="Hello.")
    issue.lists.add(news)
    job = ImportJob.objects.create(
        mailing_list=news, file_name="x.csv", file_path="/nonexistent.csv", consent="given", status="done"
    )
    content = b"email\n"
    stored = files_storage().save("exports/matrix.csv", ContentFile(content))
    staffjob = StaffJob.objects.create(
        kind="export",
        status="done",
        stored_name=stored,
        file_name="matrix.csv",
        file_size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
    )
    users = {}
    for role, group in (("editor", "Editors"), ("admin", "Admins")):
        user = User.objects.create_user(role, f"{role}@staff.example.org", "a-long-test-password-42", is_staff=True)
        user.groups.add(Group.objects.get(name=group))
        users[role] = user
    suppression = Suppression.objects.create(email_hash="0" * 64, email="gone@example.org", reason="manual")
    apitoken = api_token_create(user=users["admin"], name="matrix", scopes=["issues:read"]).token
    return {
        "list": news,
        "reader": reader,
        "issue": issue,
        "job": job,
        "users": users,
        "suppression": suppression,
        "apitoken": apitoken,
        "staffjob": staffjob,
    }


def _kwargs(kind: str, world: dict, role: str) -> dict:
    good = role == "reader"
    reader = world["reader"]
    return {
        "": {},
        "job": {"job_id": world["job"].pk},
        "staffjob": {"job_id": world["staffjob"].pk},
        "apitoken": {"token_id": world["apitoken"].pk},
        "rest": {"rest": "no/such/thing"},
        "subscriber": {"subscriber_id": reader.pk},
        "suppression": {"suppression_id": world["suppression"].pk},
        "list_id": {"list_id": world["list"].pk},
        "issue": {"issue_id": world["issue"].pk},
        "comment": {"comment_id": 999_999},
        "slot": {"slot": "a-preview-slot"},
        "issue_link": {"list_slug": world["list"].slug, "issue_id": world["issue"].pk},
        "reader": {"subscriber_id": reader.pk},
        "reader_action": {"subscriber_id": reader.pk, "action": "suppress"},
        "list": {"list_slug": world["list"].slug},
        "archive_issue": {"list_slug": world["list"].slug, "year": 2020, "month": 1, "issue_slug": "nothing"},
        "token": {"token": preferences_token_make(subscriber_id=reader.pk) if good else "forged-token"},
        "unsubscribe_token": {
            "token": unsubscribe_token_make(subscriber_id=reader.pk, list_id=world["list"].pk) if good else "forged"
        },
    }[kind]


def _path(key: str, case: Case, world: dict, role: str) -> str:
    if key == "admin:*":
        return reverse("admin:subscriptions_subscriber_changelist")
    kwargs = _kwargs(case.kwargs, world, role)
    if key == "subscriptions:list_detail":
        kwargs = {"slug": world["list"].slug}
    return reverse(key, kwargs=kwargs)


CASES = [(key, role) for key in MATRIX for role in ROLES if getattr(MATRIX[key], role) is not None]


@pytest.mark.parametrize(("key", "role"), CASES, ids=[f"{k}-{r}" for k, r in CASES])
def test_status_for_each_role(key, role, world):
    case = MATRIX[key]
    client = Client()
    if role in world["users"]:
        client.force_login(world["users"][role])
    path = _path(key, case, world, role)
    response = getattr(client, case.method)(path, case.data)
    expected = getattr(case, role)
    assert response.status_code == expected, f"{case.method.upper()} {path} as {role}"
    if expected == LOGIN and role == "anonymous" and key not in ("editor:logout", "admin:*"):
        assert response["Location"].startswith("/editor/login/")


@pytest.mark.parametrize("key", [key for key, _ in url_patterns() if key.startswith("webhooks:")])
def test_webhooks_refuse_unauthenticated_posts(key, db, settings):
    # Production sets ANYMAIL_WEBHOOK_SECRET; without it anymail accepts any post.
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": "esp:a-long-shared-secret"}
    route = dict(url_patterns())[key]
    path = "/" + route.replace("^", "").replace("(_mime)?/$", "/") if "^" in route else reverse(key)
    response = Client(raise_request_exception=False).post(path, data="{}", content_type="application/json")
    assert response.status_code >= 400, f"POST {path}"


API_CASES = [(key, role) for key in API_MATRIX for role in API_ROLES]


@pytest.mark.parametrize(("key", "role"), API_CASES, ids=[f"{k}-{r}" for k, r in API_CASES])
def test_api_status_for_each_token(key, role, world):
    """No token or a session: 401; a token without the scope: 403; with it: as the user's permissions allow."""
    case = API_MATRIX[key]
    client = Client(raise_request_exception=False)
    headers = {}
    if role == "session only":
        client.force_login(world["users"]["admin"])
    elif role != "no token":
        user = world["users"]["admin" if role == "other scopes" else role]
        taken = _operation_scopes()[key]
        scopes = [s for s in SCOPES if s not in taken] if role == "other scopes" else [case.scope]
        headers["HTTP_AUTHORIZATION"] = "Bearer " + api_token_create(user=user, name=role, scopes=scopes).secret
    kind = {"list": "list_id"}.get(case.kwargs, case.kwargs)
    path = reverse(key, kwargs=_kwargs(kind, world, role)) + case.query
    body = json.dumps(case.body).replace("FUTURE", _future()) if case.body is not None else None
    kwargs = {"data": body, "content_type": "application/json"} if body is not None else {}
    if key in ("api:issues_pause", "api:issues_resume", "api:issues_unschedule"):
        # Put the issue where the action applies, so success is a change.
        status = {"api:issues_pause": "sending", "api:issues_resume": "paused"}.get(key, "scheduled")
        Issue.objects.filter(pk=world["issue"].pk).update(status=status, scheduled_at=timezone.now())
    response = getattr(client, case.method)(path, **kwargs, **headers)
    expected = {"no token": 401, "session only": 401, "other scopes": 403}.get(role) or getattr(case, role)
    assert response.status_code == expected, f"{case.method.upper()} {path} as {role}: {response.content[:300]}"
    if expected >= 400:
        assert response["Content-Type"] == "application/problem+json"


def _operation_scopes() -> dict[str, tuple[str, ...]]:
    """Return the scopes each API operation takes (any one of them), by URL name."""
    return {f"api:{op.view_func.__name__}": op.auth_callbacks[0].scopes for op in ninja_api._operations().values()}


def test_api_matrix_names_each_operations_own_scope():
    declared = _operation_scopes()
    assert set(declared) == set(API_MATRIX), "API_MATRIX and the API's operations differ"
    wrong = {key: scopes for key, scopes in declared.items() if API_MATRIX[key].scope not in scopes}
    assert not wrong, f"These entries name a scope their operation does not take: {wrong}"

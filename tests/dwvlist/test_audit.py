"""The audit trail: every staff action leaves exactly one entry naming who, what, when and from where."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.utils import timezone

from dwvlist.audit.models import AuditEntry
from dwvlist.audit.services import audit_actor, audit_record
from issues.models import Delivery, Issue
from subscriptions.models import MailingList, Subscriber, Subscription, Suppression

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-test-password-42"
Action = AuditEntry.Action


def _staff(username: str, group: str) -> User:
    user = User.objects.create_user(username, password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


def _client(user: User, address: str) -> Client:
    client = Client(REMOTE_ADDR=address)
    client.force_login(user)
    return client


@pytest.fixture
def news(db):
    return MailingList.objects.create(name="News", slug="news", from_name="News", from_email="news@example.org")


@pytest.fixture
def editor(news):
    return _client(_staff("eddie", "Editors"), "198.51.100.7")


@pytest.fixture
def admin(news):
    return _client(_staff("ada", "Admins"), "2001:db8::5")


class Trail:
    """Assert that each step adds exactly the entries expected, and nothing else."""

    def __init__(self) -> None:
        self.seen = AuditEntry.objects.count()

    def one(self, action: str, *, who: str, ip: str | None, object_id: object = None) -> AuditEntry:
        new = list(AuditEntry.objects.order_by("id")[self.seen :])
        assert [entry.action for entry in new] == [action], f"expected one {action}, got {new}"
        self.seen += 1
        (entry,) = new
        assert entry.who == who
        assert entry.ip == ip
        assert entry.object_type == action.partition(".")[0]
        if object_id is not None:
            assert entry.object_id == str(object_id)
        assert abs(entry.at - timezone.now()) < timedelta(minutes=1)
        return entry

    def none(self) -> None:
        assert AuditEntry.objects.count() == self.seen


def test_each_editor_action_on_an_issue_leaves_one_entry(editor, news):
    trail = Trail()
    ip = "198.51.100.7"
    response = editor.post(
        "/editor/issues/new/", {"title": "Plant closings", "byline": "Eds", "body": "Text.", "lists": [news.pk]}
    )
    assert response.status_code == 302
    issue = Issue.objects.get()
    trail.one(Action.ISSUE_CREATED, who="eddie", ip=ip, object_id=issue.pk)

    data = {"title": "Plant closings, again", "byline": "Eds", "body": "Text.", "lists": [news.pk]}
    assert editor.post(f"/editor/issues/{issue.pk}/edit/", data).status_code == 302
    assert "title" in trail.one(Action.ISSUE_EDITED, who="eddie", ip=ip, object_id=issue.pk).summary

    when = (timezone.localtime() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    assert editor.post(f"/editor/issues/{issue.pk}/schedule/", {"when": when}).status_code == 302
    trail.one(Action.ISSUE_SCHEDULED, who="eddie", ip=ip, object_id=issue.pk)
    editor.post(f"/editor/issues/{issue.pk}/unschedule/")
    trail.one(Action.ISSUE_UNSCHEDULED, who="eddie", ip=ip, object_id=issue.pk)
    editor.post(f"/editor/issues/{issue.pk}/unschedule/")  # nothing to do: nothing recorded
    trail.none()

    editor.post(f"/editor/issues/{issue.pk}/send/")
    trail.one(Action.ISSUE_SENT, who="eddie", ip=ip, object_id=issue.pk)
    editor.post(f"/editor/issues/{issue.pk}/send/")  # a second send is a no-op
    trail.none()
    editor.post(f"/editor/issues/{issue.pk}/pause/")
    trail.one(Action.ISSUE_PAUSED, who="eddie", ip=ip, object_id=issue.pk)
    editor.post(f"/editor/issues/{issue.pk}/resume/")
    trail.one(Action.ISSUE_RESUMED, who="eddie", ip=ip, object_id=issue.pk)
    editor.post(f"/editor/issues/{issue.pk}/cancel/")
    trail.one(Action.ISSUE_CANCELLED, who="eddie", ip=ip, object_id=issue.pk)
    editor.post(f"/editor/issues/{issue.pk}/cancel/")
    trail.none()


def test_retrying_failures_is_recorded_once_with_the_count(editor, news):
    issue = Issue.objects.create(title="T", body="B", status=Issue.Status.SENT, sent_at=timezone.now())
    issue.lists.add(news)
    for n in range(3):
        Delivery.objects.create(
            issue=issue, email=f"r{n}@example.org", status="failed", last_error="timeout", failure_kind="transient"
        )
    trail = Trail()
    editor.post(f"/editor/issues/{issue.pk}/retry/")
    entry = trail.one(Action.ISSUE_RETRIED, who="eddie", ip="198.51.100.7", object_id=issue.pk)
    assert entry.summary == "3 failed deliveries queued again"


def test_a_scheduled_issue_started_by_beat_is_recorded_as_the_system(news):
    from issues.services import issues_start_due

    issue = Issue.objects.create(title="T", body="B", status=Issue.Status.SCHEDULED, scheduled_at=timezone.now())
    issue.lists.add(news)
    trail = Trail()
    assert issues_start_due() == [issue.pk]
    entry = trail.one(Action.ISSUE_SENT, who="system", ip=None, object_id=issue.pk)
    assert entry.actor is None


def _list_form(mailing_list: MailingList, **changes) -> dict:
    data = {
        "name": mailing_list.name,
        "slug": mailing_list.slug,
        "description": mailing_list.description,
        "from_name": mailing_list.from_name,
        "from_email": mailing_list.from_email,
        "reply_to": mailing_list.reply_to,
        "footer_text": mailing_list.footer_text,
        "logo_url": mailing_list.logo_url,
        "accent_colour": mailing_list.accent_colour,
        "contact_email": mailing_list.contact_email,
        "is_public": "on",
        "archive_enabled": "on",
        "double_opt_in": "on",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def test_list_settings_changed_in_the_admin_leave_one_entry_naming_the_fields(admin, news):
    trail = Trail()
    response = admin.post(
        f"/admin/subscriptions/mailinglist/{news.pk}/change/", _list_form(news, tracking_enabled="on")
    )
    assert response.status_code == 302
    entry = trail.one(Action.LIST_CHANGED, who="ada", ip="2001:db8::5", object_id=news.pk)
    assert entry.summary == "News: tracking_enabled"
    admin.post(f"/admin/subscriptions/mailinglist/{news.pk}/change/", _list_form(news, tracking_enabled="on"))
    trail.none()  # saved without a change
    response = admin.post("/admin/subscriptions/mailinglist/add/", _list_form(news, name="Extra", slug="extra"))
    assert response.status_code == 302
    trail.one(Action.LIST_CREATED, who="ada", ip="2001:db8::5", object_id=MailingList.objects.get(slug="extra").pk)


def _inline_management(prefix: str = "subscriptions") -> dict:
    return {f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0", f"{prefix}-MAX_NUM_FORMS": "1000"}


def test_subscribers_added_unsubscribed_suppressed_and_erased_by_staff_each_leave_one_entry(admin, news):
    trail = Trail()
    ip = "2001:db8::5"
    response = admin.post(
        "/admin/subscriptions/subscriber/add/",
        {
            "email": "ann@example.org",
            "name": "Ann",
            "created_at_0": "2026-11-01",
            "created_at_1": "10:00:00",
            **_inline_management(),
        },
    )
    assert response.status_code == 302, response.context["errors"] if response.context else response
    ann = Subscriber.objects.get(email="ann@example.org")
    entry = trail.one(Action.SUBSCRIBER_ADDED, who="ada", ip=ip, object_id=ann.pk)
    assert "ann@" not in entry.summary

    Subscription.objects.create(
        subscriber=ann, mailing_list=news, status="active", consent_source="admin", confirmed_at=timezone.now()
    )
    changelist = "/admin/subscriptions/subscriber/"
    # Bulk actions run as staff jobs in a worker: the action is recorded, once, when an admin starts it.
    admin.post(changelist, {"action": "unsubscribe_all", "_selected_action": [ann.pk]})
    entry = trail.one(Action.SUBSCRIBER_UNSUBSCRIBED, who="ada", ip=ip, object_id=ann.pk)
    assert entry.summary.startswith("1 reader by staff job ") and entry.summary.endswith(f": {ann.pk}")
    bob = Subscriber.objects.create(email="bob2@example.org")
    admin.post(changelist, {"action": "unsubscribe_all", "_selected_action": [ann.pk, bob.pk]})
    entry = trail.one(Action.SUBSCRIBER_UNSUBSCRIBED, who="ada", ip=ip, object_id="")
    assert entry.summary.endswith(f": {ann.pk}, {bob.pk}")

    response = admin.post(
        "/admin/subscriptions/suppression/add/", {"email": "bob@example.org", "reason": "manual", "note": "asked"}
    )
    assert response.status_code == 302
    suppression = Suppression.objects.get(email="bob@example.org")
    entry = trail.one(Action.SUBSCRIBER_SUPPRESSED, who="ada", ip=ip, object_id=suppression.pk)
    assert "bob@" not in entry.summary

    admin.post(changelist, {"action": "erase", "_selected_action": [ann.pk]})
    entry = trail.one(Action.SUBSCRIBER_ERASED, who="ada", ip=ip, object_id=ann.pk)
    assert "ann" not in entry.summary.lower()
    admin.post(changelist, {"action": "resend_confirmation", "_selected_action": [ann.pk]})
    trail.none()  # resending confirmations changes nothing about anyone
    assert not AuditEntry.objects.filter(summary__icontains="@example.org").exists()


def test_staff_accounts_and_their_roles_changed_each_leave_one_entry(admin):
    trail = Trail()
    ip = "2001:db8::5"
    response = admin.post(
        "/admin/auth/user/add/",
        {"username": "newbie", "password1": PASSWORD, "password2": PASSWORD, "usable_password": "true"},
    )
    assert response.status_code == 302
    newbie = User.objects.get(username="newbie")
    trail.one(Action.STAFF_CREATED, who="ada", ip=ip, object_id=newbie.pk)
    editors = Group.objects.get(name="Editors")
    joined = timezone.localtime(newbie.date_joined)
    form = {
        "username": "newbie",
        "is_active": "on",
        "is_staff": "on",
        "groups": [editors.pk],
        "date_joined_0": joined.strftime("%Y-%m-%d"),
        "date_joined_1": joined.strftime("%H:%M:%S"),
    }
    assert admin.post(f"/admin/auth/user/{newbie.pk}/change/", form).status_code == 302
    entry = trail.one(Action.STAFF_ROLES_CHANGED, who="ada", ip=ip, object_id=newbie.pk)
    assert "groups" in entry.summary and "is_staff" in entry.summary
    assert admin.post(f"/admin/auth/user/{newbie.pk}/change/", {**form, "first_name": "Neil"}).status_code == 302
    assert trail.one(Action.STAFF_CHANGED, who="ada", ip=ip, object_id=newbie.pk).summary == "newbie: first_name"
    assert admin.post(f"/admin/auth/user/{newbie.pk}/delete/", {"post": "yes"}).status_code == 302
    trail.one(Action.STAFF_DELETED, who="ada", ip=ip, object_id=newbie.pk)


def test_a_superuser_changing_a_roles_permissions_leaves_one_entry(news):
    root = User.objects.create_superuser("root", password=PASSWORD)
    client = _client(root, "192.0.2.1")
    editors = Group.objects.get(name="Editors")
    permissions = list(editors.permissions.values_list("pk", flat=True))
    trail = Trail()
    response = client.post(
        f"/admin/auth/group/{editors.pk}/change/", {"name": "Editors", "permissions": permissions[1:]}
    )
    assert response.status_code == 302
    entry = trail.one(Action.STAFF_ROLES_CHANGED, who="root", ip="192.0.2.1", object_id=editors.pk)
    assert entry.summary == "role Editors: permissions"


def test_an_import_started_and_an_export_downloaded_each_leave_one_entry(admin, news, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    trail = Trail()
    upload = io.BytesIO(b"email\nann@example.org\n")
    upload.name = "readers.csv"
    response = admin.post("/editor/subscribers/import/", {"file": upload, "mailing_list": news.pk, "consent": "given"})
    assert response.status_code == 302
    entry = trail.one(Action.IMPORT_STARTED, who="ada", ip="2001:db8::5")
    assert "readers.csv" in entry.summary and "news" in entry.summary
    from subscriptions.models import StaffJob
    from subscriptions.staff_jobs.run import staff_job_run_once

    response = admin.post("/editor/subscribers/export/", {"mailing_list": news.pk, "status": ""})
    assert response.status_code == 302
    job = StaffJob.objects.get(kind=StaffJob.Kind.EXPORT)
    assert admin.get(f"/editor/subscribers/jobs/{job.pk}/download/").status_code == 404  # not written yet
    trail.none()
    staff_job_run_once(job_id=job.pk)
    response = admin.get(f"/editor/subscribers/jobs/{job.pk}/download/")
    assert response.status_code == 200
    entry = trail.one(Action.EXPORT_DOWNLOADED, who="ada", ip="2001:db8::5", object_id=job.pk)
    assert entry.summary == StaffJob.objects.get(pk=job.pk).file_name


def test_api_tokens_are_recorded_with_their_label(news):
    user = _staff("ada", "Admins")
    trail = Trail()
    with audit_actor(user=user, token_label="newsroom-bot", ip="203.0.113.9"):
        audit_record(action=Action.TOKEN_CREATED, object_id=12, summary="scopes: issues")
    entry = trail.one(Action.TOKEN_CREATED, who="ada (token newsroom-bot)", ip="203.0.113.9", object_id=12)
    assert entry.actor == user
    audit_record(action=Action.TOKEN_REVOKED, object_id=12, user=user, token_label="", ip="not-an-ip")
    assert trail.one(Action.TOKEN_REVOKED, who="ada", ip=None).actor == user


def test_an_unknown_action_is_refused_and_long_or_hostile_text_is_cut_not_refused(news):
    with pytest.raises(ValueError, match="unknown audit action"):
        audit_record(action="issue.exploded")
    entry = audit_record(action=Action.LIST_CHANGED, object_id="9" * 100, summary="ü\r\n<script>" * 200)
    entry.refresh_from_db()
    assert len(entry.object_id) == 64 and len(entry.summary) == 500


def test_entries_can_be_neither_changed_nor_deleted(news):
    entry = audit_record(action=Action.LIST_CHANGED, object_id=news.pk, summary="x")
    entry.summary = "rewritten"
    with pytest.raises(TypeError, match="append-only"):
        entry.save()
    with pytest.raises(TypeError, match="append-only"):
        entry.delete()
    with pytest.raises(TypeError, match="append-only"):
        AuditEntry.objects.filter(pk=entry.pk).update(summary="rewritten")
    with pytest.raises(TypeError, match="append-only"):
        AuditEntry.objects.all().delete()
    assert AuditEntry.objects.get(pk=entry.pk).summary == "x"


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="the trigger is PostgreSQL's")
def test_the_database_refuses_to_change_or_delete_an_entry(news):
    entry = audit_record(action=Action.LIST_CHANGED, object_id=news.pk, summary="x")
    table = AuditEntry._meta.db_table
    for sql in (f"UPDATE {table} SET summary = 'rewritten'", f"DELETE FROM {table}"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    assert AuditEntry.objects.get(pk=entry.pk).summary == "x"


def test_deleting_a_staff_account_keeps_its_entries(news):
    user = _staff("gone", "Editors")
    audit_record(action=Action.ISSUE_CREATED, object_id=1, user=user)
    user.delete()
    entry = AuditEntry.objects.get()
    assert entry.who == "gone" and entry.actor_id is not None


def test_the_admin_shows_the_trail_but_nobody_can_add_change_or_delete(news):
    root = User.objects.create_superuser("root", password=PASSWORD)
    client = _client(root, "127.0.0.1")
    entry = audit_record(action=Action.LIST_CHANGED, object_id=news.pk, summary="tracking_enabled")
    assert "tracking_enabled" in client.get("/admin/audit/auditentry/").content.decode()
    assert client.get("/admin/audit/auditentry/add/").status_code == 403
    page = client.get(f"/admin/audit/auditentry/{entry.pk}/change/")
    assert page.status_code == 200 and 'type="submit"' not in page.content.decode().split("<form")[-1]
    assert client.post(f"/admin/audit/auditentry/{entry.pk}/change/", {"summary": "x"}).status_code == 403
    assert client.post(f"/admin/audit/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEntry.objects.get(pk=entry.pk).summary == "tracking_enabled"


def _page(client: Client, **filters) -> str:
    response = client.get("/editor/audit/", filters)
    assert response.status_code == 200
    return response.content.decode()


def test_admins_read_the_trail_filtered_by_action_who_object_and_day(admin, news):
    ada = User.objects.get(username="ada")
    eddie = _staff("eddie", "Editors")
    audit_record(action=Action.LIST_CHANGED, object_id=news.pk, summary="list summary", user=ada)
    audit_record(action=Action.ISSUE_SENT, object_id=7, summary="issue summary", user=eddie)
    AuditEntry.objects.create(
        at=timezone.now() - timedelta(days=10),
        actor=eddie,
        actor_name="eddie",
        action=Action.ISSUE_CREATED,
        object_type="issue",
        object_id="7",
        summary="old summary",
    )
    page = _page(admin)
    assert "list summary" in page and "issue summary" in page and "old summary" in page
    page = _page(admin, action="issue.sent")
    assert "issue summary" in page and "list summary" not in page
    page = _page(admin, actor="EDDIE")
    assert "issue summary" in page and "old summary" in page and "list summary" not in page
    page = _page(admin, object_type="issue", object_id="7")
    assert "issue summary" in page and "list summary" not in page
    since = (timezone.localdate() - timedelta(days=1)).isoformat()
    page = _page(admin, actor="eddie", since=since)
    assert "issue summary" in page and "old summary" not in page
    assert "No entries match these filters" in _page(admin, actor="nobody-ünïcode")


@pytest.mark.parametrize(
    "filters",
    [{"since": "2026-02-30"}, {"action": "issue.exploded"}, {"since": "2026-03-02", "until": "2026-03-01"}],
)
def test_bad_filters_get_a_clear_message_and_a_400(admin, filters):
    response = admin.get("/editor/audit/", filters)
    assert response.status_code == 400
    assert 'role="alert"' in response.content.decode() or "errorlist" in response.content.decode()


def test_editors_may_not_read_the_trail(editor):
    assert editor.get("/editor/audit/").status_code == 403

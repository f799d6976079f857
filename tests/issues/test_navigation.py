"""The one staff navigation on every staff page, in the Django admin, and our error pages."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from issues.models import Comment, Issue

PASSWORD = "a-long-test-password-42"


def _user(username: str, *, group: str | None = None, staff: bool = True) -> User:
    user = User.objects.create_user(username, f"{username}@staff.example.org", PASSWORD, is_staff=staff)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _nav(html: str) -> str:
    match = re.search(r'<nav class="staff-nav[^"]*" aria-label="Editor area">(.*?)</nav>', html, re.S)
    assert match, "no staff navigation on the page"
    return match.group(1)


def _labels(nav: str) -> list[str]:
    labels = [re.sub(r"<[^>]+>|\s+", " ", link).strip() for link in re.findall(r"<a [^>]*>(.*?)</a>", nav, re.S)]
    if "Log out" in nav:
        labels.append("Log out")
    return labels


@pytest.fixture
def editor(db):
    return _user("eddie", group="Editors")


@pytest.fixture
def admin(db):
    return _user("ada", group="Admins")


def test_editor_sees_the_editor_places_and_log_out_last(editor):
    html = _client(editor).get(reverse("editor:home")).content.decode()
    labels = _labels(_nav(html))
    assert labels[:3] == ["Issues", "New issue", "Comments"]
    assert "Archive" in labels and labels[-1] == "Log out"
    # Admin-only places are not offered to an editor.
    assert "Import and export" not in labels and "Django admin" not in labels


def test_admin_also_sees_import_export_and_the_django_admin(admin):
    labels = _labels(_nav(_client(admin).get(reverse("editor:home")).content.decode()))
    assert "Import and export" in labels and "Django admin" in labels
    assert labels.index("Django admin") < labels.index("Log out") == len(labels) - 1


def test_current_place_is_marked_with_aria_current(admin):
    client = _client(admin)
    home = _nav(client.get(reverse("editor:home")).content.decode())
    assert re.search(r'href="/editor/" aria-current="page">Issues<', home)
    new = _nav(client.get(reverse("editor:issue_new")).content.decode())
    assert re.search(r'href="/editor/issues/new/" aria-current="page">New issue<', new)
    assert 'href="/editor/" aria-current' not in new
    imports = _nav(client.get(reverse("staff:import")).content.decode())
    assert re.search(r'aria-current="page">Import and export<', imports)
    assert imports.count("aria-current") == 1


def test_comments_pages_keep_the_navigation_with_the_unhandled_count(editor):
    issue = Issue.objects.create(title="Strike", body="x")
    for n in range(3):
        Comment.objects.create(provider="t", event_id=f"e{n}", issue=issue, sender_email=f"r{n}@example.org")
    Comment.objects.create(provider="t", event_id="done", sender_email="x@example.org", status="handled")
    client = _client(editor)
    listing = _nav(client.get(reverse("comments:list")).content.decode())
    assert re.search(r'aria-current="page">Comments <span class="badge">.*3.*\(3 unhandled\)', listing, re.S)
    detail = client.get(reverse("comments:detail", args=[Comment.objects.first().pk])).content.decode()
    assert re.search(r'aria-current="true">Comments', _nav(detail))


def test_public_pages_keep_the_public_menu_for_staff(editor):
    html = _client(editor).get("/archive/").content.decode()
    assert 'aria-label="Editor area"' not in html
    assert '<a href="/editor/">Editor</a>' in html


def test_django_admin_header_links_back_to_the_editor_area(admin):
    html = _client(admin).get(reverse("admin:index")).content.decode()
    nav = _nav(html)
    assert '<a href="/editor/">← Back to the editor area</a>' in nav
    assert re.search(r'href="/admin/" aria-current="page">Django admin<', nav)


def test_editor_refused_an_admin_page_gets_our_403_with_the_navigation(editor):
    response = _client(editor).get(reverse("staff:import"))
    assert response.status_code == 403
    html = response.content.decode()
    assert "You cannot open this page" in html
    assert "Only admins manage subscribers." in html
    assert "eddie" in html
    assert _labels(_nav(html))[0] == "Issues"


def test_unknown_address_gets_our_404(client, editor):
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "Nothing here" in html and 'href="/archive/"' in html
    assert 'aria-label="Editor area"' not in html
    # Staff get their navigation on it.
    staff_page = _client(editor).get("/editor/issues/999999/")
    assert staff_page.status_code == 404
    assert "Issues" in _labels(_nav(staff_page.content.decode()))


def test_a_crash_gets_our_500_page(db, rf):
    from dwvlist.views import error_server

    request = rf.get("/editor/")
    from django.contrib.auth.models import AnonymousUser

    request.user = AnonymousUser()
    response = error_server(request)
    assert response.status_code == 500
    assert "Something went wrong on our side" in response.content.decode()


def test_a_crash_while_drawing_the_500_page_still_answers(db, rf, monkeypatch):
    from dwvlist import views

    def broken(*args, **kwargs):
        raise RuntimeError("the database is down")

    monkeypatch.setattr(views, "_error_page", broken)
    response = views.error_server(rf.get("/"))
    assert response.status_code == 500
    assert "Something went wrong on our side" in response.content.decode()


def test_success_and_error_flashes_differ_in_words_not_only_colour(editor):
    client = _client(editor)
    issue = Issue.objects.create(title="Sent already", body="x", status="sent", sent_at="2026-01-01T10:00Z")
    refused = client.get(reverse("editor:issue_edit", args=[issue.pk]), follow=True).content.decode()
    assert re.search(r'class="message message-error">.*Error:</span> This issue is sent', refused, re.S)
    draft = Issue.objects.create(title="Draft", body="x")
    done = client.post(reverse("editor:issue_unschedule", args=[draft.pk]), follow=True).content.decode()
    assert re.search(r'class="message message-info">.*Note:</span> This issue was not scheduled', done, re.S)


def test_export_and_job_pages_count_as_import_and_export(admin):
    html = _client(admin).get(reverse("staff:export")).content.decode()
    assert re.search(r'aria-current="true">Import and export<', _nav(html))
    assert "Subscribers</a>" in _nav(html) and 'aria-current="true">Subscribers' not in _nav(html)

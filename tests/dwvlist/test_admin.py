import pytest
from django.apps import apps
from django.contrib.auth.models import Group, User

from subscriptions.roles import roles_ensure


@pytest.fixture
def admin_client(client, db):
    roles_ensure(apps)
    user = User.objects.create_user("chief", password="x-long-password-1", is_staff=True)
    user.groups.add(Group.objects.get(name="Admins"))
    client.force_login(user)
    return client


def test_an_admin_cannot_make_anyone_a_superuser(admin_client):
    editor = User.objects.create_user("ed", password="x-long-password-2", is_staff=True)
    page = admin_client.get(f"/admin/auth/user/{editor.pk}/change/")
    assert page.status_code == 200
    assert 'name="is_superuser"' not in page.content.decode()
    response = admin_client.post(
        f"/admin/auth/user/{editor.pk}/change/",
        {
            "username": "ed",
            "is_active": "on",
            "is_staff": "on",
            "is_superuser": "on",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )
    assert response.status_code in (200, 302)
    editor.refresh_from_db()
    assert not editor.is_superuser


def test_an_admin_cannot_open_a_superusers_account(admin_client):
    boss = User.objects.create_superuser("boss", password="x-long-password-3")
    assert admin_client.get(f"/admin/auth/user/{boss.pk}/change/").status_code == 302
    assert "boss" not in admin_client.get("/admin/auth/user/").content.decode()

import io
import re

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from issues.models import Issue
from subscriptions.models import MailingList, Subscription


@pytest.fixture(autouse=True)
def _debug_on(settings):
    # `make run` runs with DEBUG on; pytest-django turns it off.
    settings.DEBUG = True


def _snapshot() -> dict:
    """Every row of every table the setup touches, with all its columns."""
    tables = {}
    for label in ("subscriptions", "issues", "auth", "sites"):
        for model in apps.get_app_config(label).get_models():
            tables[model._meta.label] = sorted(map(repr, model.objects.values_list()))
    return tables


@pytest.mark.django_db(transaction=True)
def test_setup_steps_twice_change_nothing_the_second_time():
    call_command("migrate", verbosity=0)
    call_command("demo_data", readers=50, stdout=io.StringIO())
    first = _snapshot()
    call_command("migrate", verbosity=0)
    call_command("demo_data", readers=50, stdout=io.StringIO())
    assert _snapshot() == first


@pytest.mark.django_db(transaction=True)
def test_demo_data_has_a_list_logins_readers_and_an_issue():
    call_command("migrate", verbosity=0)
    call_command("demo_data", readers=30, stdout=io.StringIO())
    mailing_list = MailingList.objects.get(slug="dwv")
    assert Subscription.objects.filter(mailing_list=mailing_list, status="active").count() == 30
    assert User.objects.get(username="admin").check_password("dwv-admin-demo-2026")
    editor = User.objects.get(username="editor")
    assert editor.check_password("dwv-editor-demo-2026")
    assert editor.groups.filter(name="Editors").exists()
    assert Issue.objects.get(slug="why-we-publish-this-list").lists.filter(pk=mailing_list.pk).exists()


# --- On a production-style site (DEBUG off) ------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_demo_data_refuses_to_run_with_debug_off(settings):
    settings.DEBUG = False
    call_command("migrate", verbosity=0)
    with pytest.raises(CommandError, match="--force"):
        call_command("demo_data", readers=5, stdout=io.StringIO())
    assert not User.objects.exists()
    assert not MailingList.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_forced_demo_data_with_debug_off_gives_random_passwords_shown_once(settings):
    settings.DEBUG = False
    call_command("migrate", verbosity=0)
    out = io.StringIO()
    call_command("demo_data", readers=5, force=True, stdout=out)

    printed = dict(re.findall(r"Login: (\w+) / (\S+) \(", out.getvalue()))
    assert set(printed) == {"admin", "editor"}
    admin = User.objects.get(username="admin")
    assert admin.is_superuser
    assert not admin.check_password("dwv-admin-demo-2026")
    assert admin.check_password(printed["admin"])
    assert not User.objects.get(username="editor").check_password("dwv-editor-demo-2026")
    assert "dwv-admin-demo-2026" not in out.getvalue()

    # Run again: nothing is reset, and no password is shown.
    again = io.StringIO()
    call_command("demo_data", readers=5, force=True, stdout=again)
    assert "password unchanged" in again.getvalue() and printed["admin"] not in again.getvalue()
    assert User.objects.get(username="admin").check_password(printed["admin"])


@pytest.mark.django_db(transaction=True)
def test_forced_demo_data_replaces_a_published_password_left_by_an_earlier_demo(settings):
    call_command("migrate", verbosity=0)
    call_command("demo_data", readers=5, stdout=io.StringIO())  # with DEBUG on, as `make run` does
    assert User.objects.get(username="admin").check_password("dwv-admin-demo-2026")

    settings.DEBUG = False
    call_command("demo_data", readers=5, force=True, stdout=io.StringIO())
    assert not User.objects.get(username="admin").check_password("dwv-admin-demo-2026")

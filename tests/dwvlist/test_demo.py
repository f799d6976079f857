import io

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.core.management import call_command

from issues.models import Issue
from subscriptions.models import MailingList, Subscription


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

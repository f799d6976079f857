"""What strangers can and cannot put into mail sent from the list's domain."""

from __future__ import annotations

import pytest

from subscriptions import tasks
from subscriptions.models import Subscriber
from tests.subscriptions.conftest import html_of, outbox_messages, text_of

HOSTILE_NAME = "Your account is closed: call +1 555 0100 or visit http://evil.example/claim"


@pytest.mark.parametrize("name", [HOSTILE_NAME, "Zoë <b>Ünïcode</b> “quoted”"])
def test_confirmation_mail_does_not_repeat_the_name_typed_on_the_form(
    client, news, outbox, django_capture_on_commit_callbacks, name
):
    with django_capture_on_commit_callbacks():
        response = client.post("/subscribe/", {"email": "victim@example.org", "name": name, "lists": ["news"]})
    assert response.status_code == 302
    subscriber = Subscriber.objects.get(email="victim@example.org")
    assert subscriber.name == name  # kept for the reader's own preference page

    assert tasks.confirmation_mail(subscriber.pk) is True
    [message] = outbox_messages(outbox)
    for part in (text_of(message), html_of(message), str(message["Subject"])):
        assert name not in part
        assert "evil.example" not in part and "Zoë" not in part and "Ünïcode" not in part
    assert text_of(message).startswith("Hello,\r\n")


def test_welcome_mail_of_a_list_without_opt_in_does_not_repeat_the_typed_name(
    client, notes, outbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks():
        client.post("/subscribe/", {"email": "victim@example.org", "name": HOSTILE_NAME, "lists": ["notes"]})
    subscriber = Subscriber.objects.get(email="victim@example.org")

    assert tasks.welcome_mail(subscriber.pk, notes.pk) is True
    [message] = outbox_messages(outbox)
    assert "evil.example" not in text_of(message) and "evil.example" not in html_of(message)

import time

import pytest
from django.test import Client

from subscriptions.models import Subscription
from tests.subscriptions.conftest import link_in, outbox_messages, text_of


def _wait_for_mail(outbox, count: int, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        messages = outbox_messages(outbox)
        if len(messages) >= count:
            return messages
        time.sleep(0.2)
    raise AssertionError(f"no mail in {timeout}s")


@pytest.mark.worker
def test_confirmation_mail_goes_out_through_a_real_worker_after_commit(outbox, news, celery_worker):
    response = Client().post("/subscribe/", {"email": "reader@example.org", "lists": ["news"]})
    assert response.status_code == 302
    [message] = _wait_for_mail(outbox, 1)
    assert message["To"] == "reader@example.org"
    assert message["From"] == "The News Desk <news@example.org>"
    link = link_in(text_of(message), "http://127.0.0.1:8000/confirm/")
    path = "/" + link.split("://", 1)[1].split("/", 1)[1]
    assert Client().post(path).status_code == 200
    assert Subscription.objects.get().status == "active"

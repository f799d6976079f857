"""The other two ways in: the MTA's pipe (`manage.py bounce_receive`) and the authenticated HTTP endpoint."""

from __future__ import annotations

import subprocess
import sys

import pytest

from issues.models import Delivery, DeliveryEvent, UnparsedBounce
from subscriptions.models import Suppression
from tests.conftest import ROOT, child_env
from tests.feedback.bounces.conftest import issue_sent, returned_mail

TOKEN = "t0ken-for-the-bounce-hook-0123456789"


def _pipe(raw: bytes, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "bounce_receive", *args],
        input=raw,
        capture_output=True,
        cwd=ROOT,
        env=child_env(**env),
        timeout=120,
    )


@pytest.mark.django_db(transaction=True)
def test_the_pipe_records_a_bounce_and_exits_0_and_a_replay_changes_nothing(smtp_sink):
    issue = issue_sent(readers=2)
    dead = Delivery.objects.filter(issue=issue).order_by("id").first()
    raw = returned_mail("exim_plain", dead, smtp_sink)
    first = _pipe(raw, "--recipient", smtp_sink.senders[dead.email])
    assert first.returncode == 0, first.stderr
    assert "1 recorded" in first.stdout.decode()
    dead.refresh_from_db()
    assert dead.status == "bounced"
    again = _pipe(raw)
    assert again.returncode == 0 and "0 recorded, 1 already recorded" in again.stdout.decode()
    assert DeliveryEvent.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_pipe_exits_75_when_the_database_does_not_answer_so_the_mta_tries_again():
    raw = returned_mail("garbage", Delivery(email="x@example.org"))
    result = _pipe(raw, DATABASE_URL="postgres://postgres@127.0.0.1:9/nothing_here")
    assert result.returncode == 75, result.stderr
    assert b"try again later" in result.stderr
    assert UnparsedBounce.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_the_pipe_refuses_an_empty_message_with_exit_65():
    result = _pipe(b"  \r\n")
    assert result.returncode == 65 and b"no message on standard input" in result.stderr


@pytest.mark.django_db
def test_the_http_endpoint_records_a_raw_mail(client, smtp_sink, settings):
    settings.BOUNCE_HTTP_TOKEN = TOKEN
    issue = issue_sent(readers=1)
    dead = Delivery.objects.get(issue=issue)
    response = client.post(
        "/bounces/receive/",
        data=returned_mail("m365_hard", dead, smtp_sink),
        content_type="message/rfc822",
        HTTP_AUTHORIZATION=f"Bearer {TOKEN}",
    )
    assert response.status_code == 200
    assert response.json() == {"form": "dsn", "recorded": 1, "replayed": 0, "unattributed": 0}
    assert Suppression.objects.get(email=dead.email).reason == "hard_bounce"
    assert DeliveryEvent.objects.get().payload["source"] == "http"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("configured", "authorization", "body", "status"),
    [
        ("", f"Bearer {TOKEN}", b"From: a@b\r\n\r\nx", 403),
        (TOKEN, "", b"From: a@b\r\n\r\nx", 401),
        (TOKEN, f"Bearer {TOKEN}x", b"From: a@b\r\n\r\nx", 401),
        (TOKEN, f"Basic {TOKEN}", b"From: a@b\r\n\r\nx", 401),
        (TOKEN, f"Bearer {TOKEN}", b"", 400),
        (TOKEN, f"Bearer {TOKEN}", b"x" * 20_001, 413),
    ],
)
def test_the_http_endpoint_refuses_without_the_token_or_a_body_and_stores_nothing(
    client, settings, configured, authorization, body, status
):
    settings.BOUNCE_HTTP_TOKEN = configured
    settings.BOUNCE_MESSAGE_MAX_BYTES = 20_000
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    response = client.post("/bounces/receive/", data=body, content_type="message/rfc822", **headers)
    assert response.status_code == status
    assert DeliveryEvent.objects.count() == 0 and UnparsedBounce.objects.count() == 0


@pytest.mark.django_db
def test_the_http_endpoint_takes_only_post(client, settings):
    settings.BOUNCE_HTTP_TOKEN = TOKEN
    assert client.get("/bounces/receive/", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405

"""Issues through the API: drafts, preview, test, schedule, send, controls, progress, report, failures."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from issues import selectors
from issues.delivery.tasks import complete_ledger
from issues.models import Delivery, Issue
from subscriptions.models import Subscriber, Subscription
from tests.subscriptions.conftest import outbox_messages, text_of

BODY = "The plant on *Jefferson* closes in May.\n\nRead more: https://example.org/plant\n"


def _reader(mailing_list, email: str, **fields) -> Subscriber:
    reader = Subscriber.objects.create(email=email, **fields)
    Subscription.objects.create(
        subscriber=reader,
        mailing_list=mailing_list,
        status="active",
        consent_source="form",
        confirmed_at=timezone.now(),
    )
    return reader


@pytest.fixture
def draft(editor_api, news):
    response = editor_api.post(
        "/issues", {"title": "Plant closing", "byline": "The editors", "body": BODY, "lists": ["news"]}
    )
    assert response.status_code == 201, response.content
    return response.json()


def test_an_editor_drafts_and_the_author_is_recorded(draft, cast):
    issue = Issue.objects.get(pk=draft["id"])
    assert draft["status"] == "draft" and draft["lists"] == ["news"]
    assert issue.author == cast["editor"]


def test_draft_validation_names_the_field_as_the_editor_form_does(editor_api, news):
    cases = [
        ({"title": "", "body": "B", "lists": ["news"]}, "title"),
        ({"title": "Two\r\nSubject: lines", "body": "B", "lists": ["news"]}, "title"),
        ({"title": "T", "body": "   ", "lists": ["news"]}, "body"),
        ({"title": "T", "body": "B", "lists": ["nope"]}, "lists"),
        ({"title": "T", "body": "x" * 1_000_001, "lists": ["news"]}, "body"),
    ]
    for body, field in cases:
        response = editor_api.post("/issues", body)
        assert response.status_code in (413, 422), body["title"][:20]
        if response.status_code == 422:
            assert field in [e["field"] for e in response.json()["errors"]], response.json()
    assert not Issue.objects.exists()


def test_patch_changes_a_draft_only(editor_api, draft):
    response = editor_api.patch(f"/issues/{draft['id']}", {"subtitle": "What to do"})
    assert response.status_code == 200
    assert response.json()["subtitle"] == "What to do" and response.json()["title"] == "Plant closing"
    Issue.objects.filter(pk=draft["id"]).update(status="sending")
    response = editor_api.patch(f"/issues/{draft['id']}", {"title": "Too late"})
    assert response.status_code == 409
    assert Issue.objects.get(pk=draft["id"]).title == "Plant closing"


def test_preview_is_the_mail_a_reader_gets(editor_api, draft):
    preview = editor_api.get(f"/issues/{draft['id']}/preview").json()
    assert preview["subject"] == "Plant closing"
    assert "<em>Jefferson</em>" in preview["html"]
    assert "Unsubscribe: https://example.invalid/u/preview/" in preview["text"]
    assert preview["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert preview["headers"]["From"].endswith("<news@example.org>")


def test_send_a_test_copy(editor_api, draft, outbox, eager_celery, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = editor_api.post(f"/issues/{draft['id']}/test", {"addresses": ["Me@Example.ORG"]})
    assert response.status_code == 202
    assert response.json() == {"queued_to": ["Me@example.org"]}
    [mail] = outbox_messages(outbox)
    assert mail["Subject"] == "[TEST] Plant closing"
    assert Issue.objects.get(pk=draft["id"]).status == "draft"


def test_a_test_refuses_bad_and_too_many_addresses(editor_api, draft, outbox):
    for addresses in (["not an address"], ["a@example.org, b@example.org"], [f"r{n}@example.org" for n in range(11)]):
        response = editor_api.post(f"/issues/{draft['id']}/test", {"addresses": addresses})
        assert response.status_code == 422
    assert outbox_messages(outbox) == []


def test_schedule_refuses_the_past_and_a_time_without_zone(editor_api, draft):
    past = (timezone.now() - timedelta(hours=1)).isoformat()
    assert editor_api.post(f"/issues/{draft['id']}/schedule", {"when": past}).status_code == 422
    assert editor_api.post(f"/issues/{draft['id']}/schedule", {"when": "2099-01-01T08:00:00"}).status_code == 422
    assert editor_api.post(f"/issues/{draft['id']}/schedule", {"when": "tomorrow"}).status_code == 422
    when = (timezone.now() + timedelta(days=1)).replace(microsecond=0)
    response = editor_api.post(f"/issues/{draft['id']}/schedule", {"when": when.isoformat()})
    assert response.status_code == 200
    assert response.json()["status"] == "scheduled"
    assert Issue.objects.get(pk=draft["id"]).scheduled_at == when
    back = editor_api.post(f"/issues/{draft['id']}/unschedule")
    assert back.json()["changed"] is True and back.json()["issue"]["status"] == "draft"


def test_send_writes_the_ledger_once_and_controls_act(editor_api, draft, news):
    _reader(news, "a@example.org")
    _reader(news, "b@example.org")
    first = editor_api.post(f"/issues/{draft['id']}/send")
    assert first.status_code == 200 and first.json()["changed"] is True
    assert first.json()["issue"]["status"] == "sending"
    # The request only queues the ledger's writing (never a million rows in a web request).
    assert Delivery.objects.filter(issue_id=draft["id"]).count() == 0
    complete_ledger(draft["id"])  # what the queued task does
    assert Delivery.objects.filter(issue_id=draft["id"]).count() == 2
    again = editor_api.post(f"/issues/{draft['id']}/send")
    assert again.json()["changed"] is False
    assert Delivery.objects.filter(issue_id=draft["id"]).count() == 2
    assert editor_api.post(f"/issues/{draft['id']}/pause").json()["issue"]["status"] == "paused"
    assert editor_api.post(f"/issues/{draft['id']}/pause").json()["changed"] is False
    assert editor_api.post(f"/issues/{draft['id']}/resume").json()["issue"]["status"] == "sending"
    assert editor_api.post(f"/issues/{draft['id']}/cancel").json()["issue"]["status"] == "cancelled"
    progress = editor_api.get(f"/issues/{draft['id']}/progress").json()
    assert progress["total"] == 2 and progress["cancelled"] == 2 and progress["status"] == "cancelled"


def test_sending_an_issue_without_lists_is_a_conflict(editor_api, news):
    issue = Issue.objects.create(title="No list", body="B")
    response = editor_api.post(f"/issues/{issue.pk}/send")
    assert response.status_code == 409
    assert Issue.objects.get(pk=issue.pk).status == "draft"


def test_report_and_failures_match_the_report_page(editor_api, draft, news):
    readers = [_reader(news, f"r{n}@example.org") for n in range(3)]
    issue = Issue.objects.get(pk=draft["id"])
    now = timezone.now()
    Delivery.objects.create(issue=issue, subscriber=readers[0], email="r0@example.org", status="delivered", sent_at=now)
    Delivery.objects.create(
        issue=issue, subscriber=readers[1], email="r1@example.org", status="failed", last_error="550 no such user"
    )
    Delivery.objects.create(issue=issue, subscriber=readers[2], email="r2@example.org", status="bounced", sent_at=now)
    report = editor_api.get(f"/issues/{issue.pk}/report").json()
    page = selectors.issue_report(issue=issue)
    assert {k: report[k] for k in page} == page
    assert report["opened"] is None  # the list does not track
    assert {"status": "failed", "reason": "550 no such user", "count": 1} in report["reasons"]
    failures = editor_api.get(f"/issues/{issue.pk}/failures").json()
    assert [f["email"] for f in failures["items"]] == ["r1@example.org", "r2@example.org"]
    assert failures["items"][0]["reason"] == "550 no such user"


def test_unknown_ids_are_404_problems(editor_api, news):
    for path in ("/issues/999999", "/issues/999999/preview", "/issues/999999/report", "/issues/0/progress"):
        response = editor_api.get(path)
        assert response.status_code == 404, path
        assert response["Content-Type"] == "application/problem+json"
    assert editor_api.get("/issues/99999999999999999999").status_code == 422


@pytest.mark.worker
def test_an_integrator_sends_an_issue_end_to_end(token_for, news, celery_worker):
    """From a token to a report: add readers, draft, preview, send, wait for the worker, read the report."""
    admin = token_for("admin")
    for n in range(3):
        response = admin.post(
            "/subscribers", {"email": f"api-reader{n}@example.org", "lists": ["news"], "consent_given": True}
        )
        assert response.status_code == 201
    draft = admin.post("/issues", {"title": "Sent by the API", "body": BODY, "lists": ["news"]}).json()
    assert admin.get(f"/issues/{draft['id']}/preview").status_code == 200
    assert admin.post(f"/issues/{draft['id']}/send", headers={"Idempotency-Key": "send-1"}).json()["changed"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and admin.get(f"/issues/{draft['id']}").json()["status"] != "sent":
        time.sleep(0.3)
    report = admin.get(f"/issues/{draft['id']}/report").json()
    assert (report["recipients"], report["sent"]) == (3, 3)
    mails = [m for m in outbox_messages(settings.OUTBOX_DIR) if m["Subject"] == "Sent by the API"]
    assert sorted(m["To"] for m in mails) == [f"api-reader{n}@example.org" for n in range(3)]
    assert all("List-Unsubscribe" in m and "Jefferson" in text_of(m) for m in mails)

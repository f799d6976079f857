"""axe-core on every public page and every editor page: no serious or critical violations."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from dwvlist.audit.models import AuditEntry
from dwvlist.audit.services import audit_record
from issues.delivery.ledger import ledger_write
from issues.models import Comment, Delivery, Issue
from issues.services import issue_freeze
from subscriptions.confirmation import confirmation_mail_send
from subscriptions.links import unsubscribe_url
from subscriptions.models import ImportJob, Subscriber
from tests.journeys.conftest import PASSWORD, readers_create
from tests.journeys.journey import expect, links_in, outbox_wait

pytestmark = pytest.mark.journey


def _sent_issue(
    mailing_list,
    *,
    title: str = "Rouge plant strike enters its second week",
    body: str = "Workers held the line.\n\nRead the statement at https://example.org/statement.",
) -> Issue:
    """Return an issue that went out to the list's readers, without a worker."""
    issue = Issue.objects.create(
        title=title, subtitle="Pickets hold at every gate", byline="By the DWV desk", body=body
    )
    issue.lists.add(mailing_list)
    issue_freeze(issue=issue)
    ledger_write(issue=issue)
    now = timezone.now()
    Delivery.objects.filter(issue=issue).update(status=Delivery.Status.SENT, sent_at=now, attempts=1)
    Issue.objects.filter(pk=issue.pk).update(status=Issue.Status.SENT, started_at=now, sent_at=now)
    issue.refresh_from_db()
    return issue


def _violations_report(violations: list[str]) -> str:
    return "axe-core found serious or critical violations:\n" + "\n".join(violations)


def test_public_pages_have_no_serious_accessibility_violations(axe_available, journey, outbox, news):
    page = journey.page
    issue = _sent_issue(news)
    readers_create(mailing_list=news, count=3)

    for path, label in [
        ("/", "home"),
        ("/lists/dwv/", "list page"),
        ("/subscribe/", "subscribe page"),
    ]:
        journey.goto(path, label)
        journey.accessibility_check(label)

    # Check-inbox, then confirm (the question and the answer).
    journey.goto("/lists/dwv/", "list page again")
    page.get_by_label("Email address").fill("new@example.org")
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")
    journey.step("check inbox")
    journey.accessibility_check("check inbox")
    # Mailed here rather than by a worker: this test is about the pages.
    assert confirmation_mail_send(subscriber_id=Subscriber.objects.get(email="new@example.org").pk)
    (mail,) = outbox_wait(outbox, to="new@example.org")
    (confirm_link,) = links_in(mail, containing="/confirm/")
    journey.goto(confirm_link, "confirm")
    journey.accessibility_check("confirm")
    page.get_by_role("button", name="Yes, subscribe me").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are subscribed")
    journey.step("confirmed")
    journey.accessibility_check("confirmed")

    # Unsubscribe (the question and the answer), then the preference centre.
    reader = Subscriber.objects.get(email="reader000@example.org")
    journey.goto(unsubscribe_url(subscriber_id=reader.pk, list_id=news.pk, issue_id=issue.pk), "unsubscribe")
    journey.accessibility_check("unsubscribe")
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are unsubscribed")
    journey.step("unsubscribed")
    journey.accessibility_check("unsubscribed")
    page.get_by_role("link", name="Open your preferences").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your preferences")
    journey.step("preferences")
    journey.accessibility_check("preferences")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Your preferences are saved.")
    journey.step("preferences saved")
    journey.accessibility_check("preferences saved")
    page.get_by_role("link", name="Erase me").click()
    journey.step("erase")
    journey.accessibility_check("erase")
    journey.goto("/u/not-a-real-token/", "link invalid")
    journey.accessibility_check("link invalid")

    # The public archive: index, one list, one issue.
    journey.goto("/archive/", "archive index")
    journey.accessibility_check("archive index")
    page.get_by_role("link", name="Detroit Workers' Voice").click()
    journey.step("archive list")
    journey.accessibility_check("archive list")
    page.get_by_role("link", name=issue.title).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(issue.title)
    journey.step("archive issue")
    journey.accessibility_check("archive issue")

    assert not journey.violations, _violations_report(journey.violations)


def test_editor_pages_have_no_serious_accessibility_violations(axe_available, journey, news, admin):
    page = journey.page
    readers_create(mailing_list=news, count=5)
    issue = _sent_issue(news)
    draft = Issue.objects.create(title="Next week's issue", body="Draft text with https://example.org/link.")
    scheduled = Issue.objects.create(
        title="The week after", body="Later.", status="scheduled", scheduled_at=timezone.now() + timedelta(days=7)
    )
    scheduled.lists.add(news)
    draft.lists.add(news)
    comment = Comment.objects.create(
        provider="test",
        event_id="journey-1",
        issue=issue,
        sender_email="reader000@example.org",
        sender_name="Reader 0",
        subject="Re: Rouge plant strike",
        text="Solidarity from the day shift.",
    )
    job = ImportJob.objects.create(
        mailing_list=news,
        consent=ImportJob.Consent.GIVEN,
        file_name="readers.csv",
        status=ImportJob.Status.DONE,
        total_rows=5,
        processed_rows=5,
        created_by=admin,
    )

    audit_record(action=AuditEntry.Action.LIST_CHANGED, object_id=news.pk, summary="News: tracking_enabled", user=admin)

    journey.goto("/editor/login/", "login")
    journey.accessibility_check("login")
    journey.login(username="admin", password=PASSWORD)
    for path, label in [
        ("/editor/", "editor home"),
        ("/editor/issues/new/", "issue form"),
        (f"/editor/issues/{draft.pk}/edit/", "issue form, editing"),
        (f"/editor/issues/{draft.pk}/", "preview of a draft"),
        (f"/editor/issues/{draft.pk}/send/", "send confirmation"),
        (f"/editor/issues/{draft.pk}/schedule/", "schedule"),
        (f"/editor/issues/{issue.pk}/", "preview of a sent issue"),
        (f"/editor/issues/{issue.pk}/progress/", "progress"),
        (f"/editor/issues/{scheduled.pk}/cancel/", "cancel confirmation"),
        (f"/editor/issues/{issue.pk}/report/", "report"),
        ("/editor/comments/", "comments inbox"),
        (f"/editor/comments/{comment.pk}/", "comment"),
        ("/editor/subscribers/import/", "import page"),
        (f"/editor/subscribers/import/{job.pk}/", "import job"),
        ("/editor/audit/", "audit trail"),
        ("/editor/audit/?action=list.changed&actor=admin", "audit trail, filtered"),
        ("/editor/api-tokens/", "API tokens"),
    ]:
        response = journey.goto(path, label)
        assert response.status == 200, f"{label}: {path} answered {response.status}"
        journey.accessibility_check(label)
    # A new API token: its secret is shown once, on the answer to the form.
    journey.goto("/editor/api-tokens/", "API tokens again")
    page.get_by_label("Name").fill("Website signup form")
    page.get_by_label("subscribers:write", exact=False).check()
    page.get_by_role("button", name="Create the token").click()
    expect(page.get_by_role("textbox", name="Token", exact=True)).to_have_value(re.compile(r"^dwv_"))
    journey.step("API token created")
    journey.accessibility_check("API token created")
    # The page must not be judged before its poller has filled it in.
    journey.goto(f"/editor/issues/{issue.pk}/progress/", "progress, polled")
    expect(page.locator("#progress-note")).to_have_text("Finished.")
    journey.accessibility_check("progress, polled")

    assert not journey.violations, _violations_report(journey.violations)

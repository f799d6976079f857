"""An editor in a real browser: compose, preview, test, send, watch it finish, report, archive."""

from __future__ import annotations

import re

import pytest

from issues.models import Delivery, Issue
from tests.journeys.conftest import PASSWORD, readers_create
from tests.journeys.journey import expect, outbox_messages, outbox_wait

pytestmark = [pytest.mark.journey, pytest.mark.worker, pytest.mark.slow]

READERS = 36
TITLE = "Strike at the Rouge plant"
ARTICLE = """\
Workers at the Rouge plant walked out at dawn on Monday.

The union's statement is at https://example.org/statement and the company's reply at https://example.com/reply.

Picket lines will stand *every day* until the talks resume.
"""


def test_editor_composes_previews_tests_sends_and_finds_the_issue_in_the_archive(
    journey, outbox, journey_worker, news, editor
):
    page = journey.page
    readers_create(mailing_list=news, count=READERS)

    journey.login(username="editor", password=PASSWORD)
    expect(page.get_by_role("heading", level=1)).to_have_text("Issues")

    # Compose: paste a plain-text article with links.
    page.get_by_role("link", name="Write a new issue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New issue")
    page.get_by_label("Title", exact=True).fill(TITLE)
    page.get_by_label("Byline").fill("By the DWV desk")
    page.get_by_label("Body").fill(ARTICLE)
    page.get_by_label("Detroit Workers' Voice").check()
    journey.step("issue written")
    page.get_by_role("button", name="Save and preview").click()

    # Preview: the frame shows the HTML mail, links made links.
    expect(page.get_by_role("heading", level=1)).to_have_text(TITLE)
    expect(page.get_by_role("status")).to_contain_text("Saved.")
    mail = page.frame_locator("iframe")
    expect(mail.get_by_text("Workers at the Rouge plant walked out at dawn on Monday.")).to_be_visible()
    expect(mail.locator('a[href="https://example.org/statement"]')).to_have_count(1)
    expect(mail.locator('a[href="https://example.com/reply"]')).to_have_count(1)
    journey.step("preview")
    journey.step("preview, the HTML mail", element=page.locator("iframe"))
    issue = Issue.objects.get(title=TITLE)

    # A test copy to the editor's own address, marked as a test.
    expect(page.get_by_label("Send a test to")).to_have_value("editor@example.org")
    page.get_by_role("button", name="Send a test").click()
    expect(page.get_by_role("status")).to_contain_text("A test copy is on its way to editor@example.org.")
    (test_copy,) = outbox_wait(outbox, to="editor@example.org")
    assert test_copy["Subject"] == f"[TEST] {TITLE}"
    html = test_copy.get_body(preferencelist=("html",)).get_content()
    assert 'href="https://example.org/statement"' in html
    journey.step("test sent")
    assert Delivery.objects.filter(issue=issue).count() == 0

    # Send for real, after the confirmation page names the count.
    page.get_by_role("link", name="Send now…").click()
    send_button = page.get_by_role("button", name=f"Send to {READERS} readers")
    expect(send_button).to_be_visible()
    journey.step("send confirmation")
    send_button.click()

    # The progress page polls its JSON until the bar is full.
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Sending “{TITLE}”")
    journey.step("progress started")
    page.wait_for_function(
        "() => { const bar = document.getElementById('progress-bar'); return bar && bar.value === bar.max; }",
        timeout=60_000,
    )
    expect(page.locator('#progress [data-field="status_display"]')).to_have_text("Sent")
    expect(page.locator('#progress [data-field="sent"]')).to_have_text(str(READERS))
    expect(page.locator("#progress-note")).to_have_text("Finished.")
    journey.step("progress at 100 percent")
    mailed = [m for m in outbox_messages(outbox) if m["Subject"] == TITLE]
    assert sorted(m["To"].addresses[0].addr_spec for m in mailed) == [
        f"reader{n:03d}@example.org" for n in range(READERS)
    ]

    # The report agrees.
    page.get_by_role("link", name="Report", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Report on “{TITLE}”")
    figures = page.get_by_role("table").first
    expect(figures.get_by_role("row", name=f"Recipients {READERS}", exact=True)).to_be_visible()
    expect(figures.get_by_role("row", name=f"Sent {READERS}", exact=True)).to_be_visible()
    expect(figures.get_by_role("row", name="Failed 0", exact=True)).to_be_visible()
    journey.step("report")

    # Anyone finds it in the public archive.
    journey.goto("/archive/", "archive index")
    page.get_by_role("link", name="Detroit Workers' Voice").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Detroit Workers' Voice: archive")
    journey.step("archive list")
    page.get_by_role("link", name=TITLE).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(TITLE)
    expect(page.locator("main")).to_contain_text("Picket lines will stand")
    expect(page.locator('main a[href="https://example.org/statement"]')).to_have_count(1)
    journey.step("archived issue")


def test_editor_writes_with_the_live_preview_and_the_draft_saves_itself(journey, news, editor):
    page = journey.page
    journey.login(username="editor", password=PASSWORD)
    page.get_by_role("navigation", name="Editor area").get_by_role("link", name="New issue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New issue")
    pane = page.get_by_role("region", name="Preview as a reader gets it")
    expect(pane).to_be_visible()

    page.get_by_label("Title", exact=True).fill("Live from the picket line")
    page.get_by_label("Detroit Workers' Voice").check()
    page.get_by_label("Body").press_sequentially("Day three at gate four. See https://example.org/pickets", delay=5)
    # After a pause the frame shows the mail as typed, links made links.
    mail = page.frame_locator("#preview-frame")
    expect(mail.get_by_text("Day three at gate four.")).to_be_visible()
    expect(mail.locator('a[href="https://example.org/pickets"]')).to_have_count(1)
    journey.step("live preview")
    journey.step("live preview, the frame", element=page.locator("#preview-frame"))

    # The plain-text tab.
    page.get_by_role("tab", name="Plain text").click()
    text = page.get_by_role("tabpanel", name="Plain text")
    expect(text).to_contain_text("Live from the picket line")
    expect(text).to_contain_text("Day three at gate four. See https://example.org/pickets")
    expect(text).to_contain_text("Unsubscribe: ")
    journey.step("plain-text tab")

    # Drafts save themselves and say so; the address becomes the draft's.
    expect(page.locator("#save-state")).to_contain_text("Draft saved at", timeout=15_000)
    issue = Issue.objects.get(title="Live from the picket line")
    assert issue.status == "draft" and "gate four" in issue.body
    assert list(issue.lists.all()) == [news]
    expect(page).to_have_url(re.compile(f"/editor/issues/{issue.pk}/edit/$"))
    journey.step("draft saved")

    # Unsaved changes: leaving asks first.
    page.get_by_label("Body").press("End")
    page.get_by_label("Body").press_sequentially(" More to come.", delay=5)
    asked = []

    def answer(dialog):
        asked.append(dialog.type)
        dialog.dismiss()

    page.on("dialog", answer)
    page.close(run_before_unload=True)
    page.wait_for_timeout(500)
    assert asked == ["beforeunload"]
    assert not page.is_closed()
    # "Save and preview" still works as the plain form does, on the same draft.
    page.get_by_role("button", name="Save and preview").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Live from the picket line")
    assert Issue.objects.count() == 1
    assert Issue.objects.get().body.endswith("More to come.")

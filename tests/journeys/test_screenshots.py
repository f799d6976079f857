"""Every page, photographed at 1280 and 390 pixels wide in light and dark mode, and checked by axe-core.

The pictures go to test-artifacts/screenshots/<page>-<width>-<scheme>.png on
every run (git-ignored; CI keeps the folder), for a person to look through.
axe-core checks each page at desktop width in light mode and at phone
width in dark mode: no serious or critical violation may remain.
"""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from issues.models import Comment, Delivery, DeliveryEvent, Issue
from subscriptions.confirmation import confirmation_mail_send
from subscriptions.links import unsubscribe_url
from subscriptions.models import ImportJob, Subscriber, Subscription
from tests.journeys.conftest import PASSWORD, readers_create, staff_create
from tests.journeys.journey import ROOT, expect, links_in, outbox_wait
from tests.journeys.test_accessibility import _sent_issue, _violations_report

pytestmark = [pytest.mark.journey, pytest.mark.slow]

SHOT_DIR = ROOT / "test-artifacts" / "screenshots"
WIDTHS = (1280, 390)
SCHEMES = ("light", "dark")


class Album:
    """Photographs the journey's current page in every width and colour scheme, and runs axe-core on it."""

    def __init__(self, journey, prefix: str):
        self.journey = journey
        self.prefix = prefix
        self.names: list[str] = []
        SHOT_DIR.mkdir(parents=True, exist_ok=True)
        for old in SHOT_DIR.glob(f"{prefix}-*.png"):
            old.unlink()

    def take(self, name: str, *, axe: bool = True) -> None:
        page = self.journey.page
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        number = f"{self.prefix}-{len(self.names) + 1:02d}"
        self.names.append(name)
        for scheme in SCHEMES:
            page.emulate_media(color_scheme=scheme)
            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": 900})
                page.screenshot(path=str(SHOT_DIR / f"{number}-{slug}-{width}-{scheme}.png"), full_page=True)
                if axe and (scheme, width) in (("light", 1280), ("dark", 390)):
                    self.journey.accessibility_check(f"{name} at {width}px, {scheme}")
        page.emulate_media(color_scheme="light")
        page.set_viewport_size({"width": 1280, "height": 900})

    def visit(self, path: str, name: str, *, status: int = 200, axe: bool = True) -> None:
        response = self.journey.page.goto(self.journey.url(path))
        assert response.status == status, f"{name}: {path} answered {response.status}"
        self.take(name, axe=axe)


@pytest.fixture
def album(request, axe_available, journey):
    return Album(journey, prefix="staff" if "staff" in request.node.name else "public")


def test_every_public_page_in_both_widths_and_schemes(album, journey, outbox, news):
    page = journey.page
    older = _sent_issue(news, title="The contract vote", body="The local voted on the contract.")
    issue = _sent_issue(news)
    readers_create(mailing_list=news, count=3)
    now = timezone.now()
    Comment.objects.create(
        provider="t",
        event_id="l1",
        issue=issue,
        sender_email="reader000@example.org",
        sender_name="Reader 0",
        text="Solidarity from the day shift at https://example.org/a-very-long-link-that-must-wrap-on-a-phone-screen-"
        "without-running-off-the-edge",
        published=True,
        published_at=now,
        consent_at=now,
    )
    album.visit("/", "home")
    album.visit("/subscribe/", "subscribe page")
    album.visit("/lists/dwv/", "list page")
    page.get_by_label("Email address").fill("new@example.org")
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")
    album.take("check inbox")
    assert confirmation_mail_send(subscriber_id=Subscriber.objects.get(email="new@example.org").pk)
    (mail,) = outbox_wait(outbox, to="new@example.org")
    (confirm_link,) = links_in(mail, containing="/confirm/")
    page.goto(confirm_link)
    album.take("confirm")
    page.get_by_role("button", name="Yes, subscribe me").click()
    album.take("confirmed")
    reader = Subscriber.objects.get(email="reader000@example.org")
    page.goto(unsubscribe_url(subscriber_id=reader.pk, list_id=news.pk, issue_id=issue.pk))
    album.take("unsubscribe")
    page.get_by_role("button", name="Unsubscribe").click()
    album.take("unsubscribed")
    page.get_by_role("button", name=re.compile("Subscribe me again")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are subscribed again")
    album.take("subscribed again")
    page.get_by_role("link", name="Open your preferences").click()
    album.take("preferences")
    page.get_by_role("link", name="Erase me").click()
    album.take("erase")
    album.visit("/u/not-a-real-token/", "link invalid", status=404)
    album.visit("/archive/", "archive index")
    album.visit("/archive/dwv/", "archive list")
    album.visit('/archive/dwv/?q="second+week"', "archive search")
    page.get_by_role("link", name=issue.title).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(issue.title)
    album.take("archive issue")
    assert older.pk
    album.visit("/no/such/page/", "not found", status=404)
    assert not journey.violations, _violations_report(journey.violations)


def test_every_staff_page_in_both_widths_and_schemes(album, journey, news, admin):
    page = journey.page
    readers_create(mailing_list=news, count=5)
    issue = _sent_issue(news)
    draft = Issue.objects.create(title="Next week's issue", body="Draft text with https://example.org/link.")
    draft.lists.add(news)
    reader = Subscriber.objects.get(email="reader001@example.org")
    delivery = Delivery.objects.get(issue=issue, subscriber=reader)
    Delivery.objects.filter(pk=delivery.pk).update(status="bounced", last_error="550 5.1.1 mailbox unknown")
    DeliveryEvent.objects.create(
        provider="mailgun",
        event_id="e1",
        event_type="bounced",
        delivery=delivery,
        recipient=reader.email,
        description="mailbox unknown",
    )
    Subscription.objects.filter(subscriber=reader).update(
        status="unsubscribed", unsubscribed_at=timezone.now(), unsubscribe_source="bounce"
    )
    comment = Comment.objects.create(
        provider="test",
        event_id="journey-1",
        issue=issue,
        subscriber=reader,
        sender_email=reader.email,
        sender_name="Reader 1",
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

    album.visit("/editor/login/", "login")
    journey.login(username="admin", password=PASSWORD)
    album.take("editor home")
    album.visit("/editor/issues/new/", "new issue")
    page.get_by_label("Title", exact=True).fill("Live from the picket line")
    page.get_by_label("Body").fill("Day three at gate four. See https://example.org/pickets")
    page.get_by_label("Detroit Workers' Voice").check()
    expect(page.frame_locator("#preview-frame").get_by_text("Day three at gate four.")).to_be_visible()
    expect(page.locator("#preview-state")).to_have_text("Preview up to date.")
    album.take("new issue, written, live preview")
    page.get_by_role("tab", name="Plain text").click()
    album.take("new issue, plain-text tab")
    for path, name in [
        (f"/editor/issues/{draft.pk}/edit/", "edit a draft"),
        (f"/editor/issues/{draft.pk}/", "preview of a draft"),
        (f"/editor/issues/{draft.pk}/send/", "send confirmation"),
        (f"/editor/issues/{draft.pk}/schedule/", "schedule"),
        (f"/editor/issues/{issue.pk}/", "preview of a sent issue"),
        (f"/editor/issues/{issue.pk}/report/", "report"),
        ("/editor/comments/", "comments inbox"),
        (f"/editor/comments/{comment.pk}/", "comment"),
        ("/editor/subscribers/", "subscribers"),
        ("/editor/subscribers/?q=reader00&status=unsubscribed", "subscribers, searched"),
        (f"/editor/subscribers/{reader.pk}/", "reader page"),
        (f"/editor/subscribers/{reader.pk}/erase/", "erase a reader, confirmation"),
        ("/editor/subscribers/import/", "import and export"),
        (f"/editor/subscribers/import/{job.pk}/", "import job"),
        ("/editor/issues/999999/", "not found, staff"),
    ]:
        album.visit(path, name, status=404 if "999999" in path else 200)
    page.goto(journey.url(f"/editor/issues/{issue.pk}/progress/"))
    expect(page.locator("#progress-note")).to_have_text("Finished.")
    album.take("progress")
    # The Django admin, with the editor area's navigation in its header. Its
    # own pages are Django's: photographed, not judged by axe here.
    album.visit("/admin/", "django admin", axe=False)
    expect(page.get_by_role("link", name="← Back to the editor area")).to_be_visible()

    # An editor sent to an admin page.
    page.get_by_role("link", name="← Back to the editor area").click()
    page.get_by_role("button", name=re.compile("Log out")).click()
    staff_create(username="editor", group="Editors")
    journey.login(username="editor", password=PASSWORD)
    album.visit("/editor/subscribers/import/", "forbidden, editor", status=403)
    assert not journey.violations, _violations_report(journey.violations)

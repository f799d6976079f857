"""A reader in a real browser: subscribe, confirm from the mail, receive an issue, leave, come back."""

from __future__ import annotations

import re

import pytest

from issues.models import Issue
from issues.services import issue_send
from subscriptions.models import Subscriber, Subscription
from tests.journeys.journey import expect, links_in, outbox_wait

pytestmark = [pytest.mark.journey, pytest.mark.worker, pytest.mark.slow]

READER = "rosa@example.org"


def test_reader_subscribes_confirms_receives_an_issue_unsubscribes_and_comes_back(
    journey, outbox, journey_worker, news
):
    page = journey.page

    # Subscribe on the list page.
    journey.goto("/lists/dwv/", "list page")
    expect(page.get_by_role("heading", level=1)).to_have_text("Detroit Workers' Voice")
    page.get_by_label("Email address").fill(READER)
    page.get_by_label("Name (optional)").fill("Rosa")
    journey.step("subscribe form filled")
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")
    journey.step("check your inbox")

    # The confirmation mail came through the worker; its link asks first.
    (confirmation,) = outbox_wait(outbox, to=READER)
    (confirm_link,) = links_in(confirmation, containing="/confirm/")
    assert confirm_link.startswith(journey.base_url)
    journey.goto(confirm_link, "confirmation link opened")
    expect(page.get_by_role("heading", level=1)).to_have_text("Confirm your subscription")
    assert Subscription.objects.get(subscriber__email=READER).status == Subscription.Status.PENDING
    page.get_by_role("button", name="Yes, subscribe me").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are subscribed")
    expect(page.locator("main")).to_contain_text("Detroit Workers' Voice")
    journey.step("confirmed")
    assert Subscription.objects.get(subscriber__email=READER).status == Subscription.Status.ACTIVE

    # An editor sends an issue; the reader gets it, with a way out.
    issue = Issue.objects.create(title="Plant closings in the Rouge", body="Workers walked out at dawn.")
    issue.lists.add(news)
    assert issue_send(issue=issue) is True
    (mailed,) = outbox_wait(outbox, to=READER, subject="Plant closings in the Rouge")
    assert "Workers walked out at dawn." in mailed.get_body(preferencelist=("plain",)).get_content()
    assert mailed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe_link = re.search(r"<(https?://[^>]+)>", mailed["List-Unsubscribe"]).group(1)
    assert unsubscribe_link.startswith(journey.base_url + "/u/")
    assert unsubscribe_link in links_in(mailed, containing="/u/")

    # The unsubscribe link asks before it acts.
    journey.goto(unsubscribe_link, "unsubscribe link opened")
    expect(page.get_by_role("heading", level=1)).to_have_text("Unsubscribe")
    assert Subscription.objects.get(subscriber__email=READER).status == Subscription.Status.ACTIVE
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are unsubscribed")
    journey.step("unsubscribed")
    assert Subscription.objects.get(subscriber__email=READER).status == Subscription.Status.UNSUBSCRIBED

    # Back through the preferences link: rejoin the list under a new name.
    page.get_by_role("link", name="Open your preferences").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your preferences")
    journey.step("preferences")
    checkbox = page.get_by_label("Detroit Workers' Voice")
    expect(checkbox).not_to_be_checked()
    checkbox.check()
    page.get_by_label("Your name").fill("Rosa Parks")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Your preferences are saved.")
    expect(page.get_by_label("Detroit Workers' Voice")).to_be_checked()
    expect(page.get_by_label("Your name")).to_have_value("Rosa Parks")
    journey.step("preferences saved")
    assert Subscriber.objects.get(email=READER).name == "Rosa Parks"
    assert Subscription.objects.get(subscriber__email=READER).status == Subscription.Status.ACTIVE


def test_reader_finds_an_issue_in_the_archive_moves_between_issues_and_subscribes_from_it(
    journey, outbox, journey_worker, news
):
    from tests.journeys.test_accessibility import _sent_issue

    page = journey.page
    older = _sent_issue(news, title="Older: the contract vote", body="The local voted on the contract.")
    newer = _sent_issue(
        news, title="Rouge plant strike enters its second week", body="Pickets stand firm at gate four."
    )

    # A search for a quoted phrase finds the issue.
    journey.goto("/archive/dwv/", "archive list")
    page.get_by_label("Search the archive").fill('"gate four"')
    page.get_by_role("button", name="Search").click()
    journey.step("archive search")
    expect(page.locator("ol.archive h2")).to_have_count(1)
    page.get_by_role("link", name=newer.title).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(newer.title)
    journey.step("archive issue")
    # Previous issue, then back, then to the list.
    page.get_by_role("link", name=re.compile("Previous issue")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(older.title)
    page.get_by_role("link", name=re.compile("Next issue")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(newer.title)
    assert page.locator('meta[property="og:title"]').get_attribute("content") == newer.title

    # The subscribe box under the article.
    box = page.locator(".subscribe-box")
    expect(box.get_by_role("heading", level=2)).to_have_text("Get Detroit Workers' Voice by email")
    box.get_by_label("Email address").fill("from-the-archive@example.org")
    journey.step("subscribe box filled", element=box)
    box.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")
    journey.step("check your inbox")
    (confirmation,) = outbox_wait(outbox, to="from-the-archive@example.org")
    (confirm_link,) = links_in(confirmation, containing="/confirm/")
    journey.goto(confirm_link, "confirm")
    page.get_by_role("button", name="Yes, subscribe me").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are subscribed")
    subscription = Subscription.objects.get(subscriber__email="from-the-archive@example.org")
    assert subscription.status == Subscription.Status.ACTIVE and subscription.mailing_list == news

import datetime
import xml.etree.ElementTree as ET

import pytest
from django.utils import timezone

from issues.models import Issue
from issues.rendering import issue_render
from issues.services import issue_send
from subscriptions.models import MailingList, Subscriber, Subscription

ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
def mailing_list(db):
    return MailingList.objects.create(
        name="Detroit Workers' Voice",
        slug="dwv",
        description="News from the shop floor.",
        from_name="DWV",
        from_email="list@dwv.example.org",
        footer_text="Write to us: editors@dwv.example.org",
    )


def sent(mailing_list, title, *, when=None, body="Body text.", byline="By Ana Ruiz", slug=""):
    """Create an issue as issue_send leaves it once delivered: frozen snapshot, status sent."""
    issue = Issue.objects.create(title=title, body=body, byline=byline, slug=slug)
    issue.lists.add(mailing_list)
    rendered = issue_render(issue)
    when = when or timezone.now()
    Issue.objects.filter(pk=issue.pk).update(
        status="sent",
        started_at=when,
        sent_at=when,
        snapshot_subject=rendered.subject,
        snapshot_html=rendered.html,
        snapshot_text=rendered.text,
        snapshot_at=when,
    )
    issue.refresh_from_db()
    return issue


def local(year, month, day):
    return timezone.make_aware(datetime.datetime(year, month, day, 12, 0))


def test_index_shows_public_lists_with_an_archive_only(client, mailing_list):
    MailingList.objects.create(name="Secret", slug="secret", from_name="S", from_email="s@x.org", is_public=False)
    MailingList.objects.create(
        name="Unarchived", slug="noarch", from_name="N", from_email="n@x.org", archive_enabled=False
    )
    page = client.get("/archive/").content.decode()
    assert "Detroit Workers&#x27; Voice" in page
    assert "Secret" not in page and "Unarchived" not in page


@pytest.mark.parametrize("change", [{"is_public": False}, {"archive_enabled": False}])
def test_private_lists_and_lists_without_archive_answer_404_everywhere(client, mailing_list, change):
    issue = sent(mailing_list, "Strike vote", when=local(2026, 3, 4))
    urls = ["/archive/dwv/", "/archive/dwv/feed.atom", "/archive/dwv/2026/03/strike-vote/"]
    assert all(client.get(url).status_code == 200 for url in urls)
    MailingList.objects.filter(pk=mailing_list.pk).update(**change)
    assert all(client.get(url).status_code == 404 for url in urls)
    assert issue.title not in client.get("/archive/").content.decode()


def test_list_page_shows_sent_issues_newest_first_with_dates_and_bylines(client, mailing_list):
    sent(mailing_list, "Older", when=local(2026, 1, 10))
    sent(mailing_list, "Newer", when=local(2026, 2, 20), byline="By Lee Chan")
    draft = Issue.objects.create(title="Draft not shown", body="x")
    draft.lists.add(mailing_list)
    page = client.get("/archive/dwv/").content.decode()
    assert page.index("Newer") < page.index("Older")
    assert '<a href="/archive/dwv/2026/02/newer/">Newer</a>' in page
    assert "20 February 2026" in page and "By Lee Chan" in page
    assert "Draft not shown" not in page
    assert 'type="application/atom+xml"' in page


def test_list_page_is_paginated(client, mailing_list):
    for n in range(23):
        sent(mailing_list, f"Issue number {n:02d}", when=local(2025, 1, 1) + datetime.timedelta(days=n))
    first = client.get("/archive/dwv/").content.decode()
    assert "Issue number 22" in first and "Issue number 02" not in first
    assert "Page 1 of 2" in first
    second = client.get("/archive/dwv/?page=2").content.decode()
    assert "Issue number 02" in second and "Issue number 22" not in second


def test_search_finds_issues_by_title_or_body(client, mailing_list):
    sent(mailing_list, "Strike vote", body="The local voted today.")
    sent(mailing_list, "Plant closing", body="Sixty jobs at the Dearborn line.")
    page = client.get("/archive/dwv/?q=dearborn").content.decode()
    assert "Plant closing" in page and "Strike vote" not in page
    assert "1 issue matching “dearborn”" in page
    page = client.get("/archive/dwv/?q=STRIKE").content.decode()
    assert "Strike vote" in page and "Plant closing" not in page


def test_issue_page_shows_the_snapshot_that_was_sent_without_anything_per_reader(client, mailing_list):
    issue = sent(mailing_list, "Strike vote", when=local(2026, 3, 4), body="As sent, with https://example.com/.")
    Issue.objects.filter(pk=issue.pk).update(body="Changed later.")
    response = client.get("/archive/dwv/2026/03/strike-vote/")
    page = response.content.decode()
    assert "<h1>Strike vote</h1>" in page
    assert 'As sent, with <a href="https://example.com/" rel="noopener noreferrer">https://example.com/</a>.' in page
    assert "Changed later." not in page
    for per_reader in ("%%", "/u/", "/p/", "Unsubscribe", "editors@dwv.example.org"):
        assert per_reader not in page


def test_an_issue_sent_through_the_service_is_in_the_archive_at_its_slug(client, mailing_list):
    reader = Subscriber.objects.create(email="r@example.org")
    Subscription.objects.create(
        subscriber=reader,
        mailing_list=mailing_list,
        status="active",
        consent_source="form",
        confirmed_at=timezone.now(),
    )
    issue = Issue.objects.create(title="Sent for real!", body="Hello.")
    issue.lists.add(mailing_list)
    assert issue_send(issue=issue)
    issue.refresh_from_db()
    Issue.objects.filter(pk=issue.pk).update(status="sent", sent_at=timezone.now())
    now = timezone.localtime()
    response = client.get(f"/archive/dwv/{now:%Y}/{now:%m}/sent-for-real/")
    assert response.status_code == 200
    assert "Hello." in response.content.decode()


def test_two_issues_with_one_title_in_a_month_get_distinct_permanent_urls(client, mailing_list):
    first = sent(mailing_list, "Weekly notes", when=local(2026, 4, 1), body="First.")
    second = sent(mailing_list, "Weekly notes", when=local(2026, 4, 8), body="Second.")
    assert "First." in client.get("/archive/dwv/2026/04/weekly-notes/").content.decode()
    assert "Second." in client.get(f"/archive/dwv/2026/04/weekly-notes-{second.pk}/").content.decode()
    assert f"/archive/dwv/2026/04/weekly-notes-{first.pk}/" not in client.get("/archive/dwv/").content.decode()


def test_unknown_issue_or_month_answers_404(client, mailing_list):
    sent(mailing_list, "Strike vote", when=local(2026, 3, 4))
    assert client.get("/archive/dwv/2026/04/strike-vote/").status_code == 404
    assert client.get("/archive/dwv/2026/13/strike-vote/").status_code == 404
    assert client.get("/archive/dwv/2026/03/other/").status_code == 404
    assert client.get("/archive/nope/").status_code == 404


def test_atom_feed_lists_sent_issues_with_their_content(client, mailing_list, settings):
    settings.SITE_URL = "https://list.example.org"
    sent(mailing_list, "Older", when=local(2026, 1, 10), body="Older *body*.")
    sent(mailing_list, "Newer", when=local(2026, 2, 20), body="Newer body.", byline="By Lee Chan")
    response = client.get("/archive/dwv/feed.atom")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/atom+xml")
    feed = ET.fromstring(response.content)
    assert feed.find(f"{ATOM}title").text == "Detroit Workers' Voice"
    entries = feed.findall(f"{ATOM}entry")
    assert [e.find(f"{ATOM}title").text for e in entries] == ["Newer", "Older"]
    newer = entries[0]
    assert newer.find(f"{ATOM}link").get("href") == "https://list.example.org/archive/dwv/2026/02/newer/"
    assert newer.find(f"{ATOM}author/{ATOM}name").text == "By Lee Chan"
    assert "<em>body</em>" in entries[1].find(f"{ATOM}summary").text
    assert "%%" not in response.content.decode()
    assert "Unsubscribe" not in response.content.decode()

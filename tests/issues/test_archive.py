import datetime
import re
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


# The issue page wins readers: subscribe box, neighbours, link previews, letters ------------


def test_issue_page_has_subscribe_box_neighbours_back_link_and_link_preview_tags(client, mailing_list, settings):
    settings.SITE_URL = "https://list.example.org"
    first = sent(mailing_list, "First strike", when=local(2026, 1, 5), body="One.")
    middle = sent(
        mailing_list,
        "Second & <strike>",
        when=local(2026, 2, 5),
        body="The union local met on Monday to talk about the contract. " * 8,
    )
    last = sent(mailing_list, "Third strike", when=local(2026, 3, 5), body="Three.")
    page = client.get("/archive/dwv/2026/02/second-strike/").content.decode()
    # Back to the list, previous (older) and next (newer).
    assert '<a href="/archive/dwv/">← All issues of Detroit Workers&#x27; Voice</a>' in page
    assert re.search(r'href="/archive/dwv/2026/01/first-strike/" rel="prev">.*First strike</a>', page)
    assert re.search(r'href="/archive/dwv/2026/03/third-strike/" rel="next">.*Third strike</a>', page)
    # A subscribe box for this list, posting to the subscribe form.
    box = page[page.index('class="subscribe-box"') :]
    assert 'action="/subscribe/"' in box and 'name="lists" value="dwv"' in box
    # Open Graph and Twitter tags, escaped, with a summary of the body.
    assert '<meta property="og:title" content="Second &amp; &lt;strike&gt;">' in page
    assert '<meta property="og:url" content="https://list.example.org/archive/dwv/2026/02/second-strike/">' in page
    assert '<meta name="twitter:card" content="summary">' in page
    description = re.search(r'<meta property="og:description" content="([^"]*)">', page).group(1)
    assert description.startswith("The union local met on Monday") and description.endswith("…")
    assert len(description) <= 200
    # The ends have only one neighbour.
    first_page = client.get("/archive/dwv/2026/01/first-strike/").content.decode()
    assert 'rel="prev"' not in first_page and 'rel="next"' in first_page
    assert 'rel="next"' not in client.get("/archive/dwv/2026/03/third-strike/").content.decode()
    assert first.pk and middle.pk and last.pk


def test_issue_page_styles_subtitle_and_byline_as_in_the_mail(client, mailing_list):
    issue = Issue.objects.create(title="Strike", subtitle="Day two", byline="By Ana Ruiz", body="Text.")
    issue.lists.add(mailing_list)
    issue.delete()
    issue = sent(mailing_list, "Strike", when=local(2026, 3, 4), byline="By Ana Ruiz")
    Issue.objects.filter(pk=issue.pk).update(subtitle="Day two")
    issue.refresh_from_db()
    Issue.objects.filter(pk=issue.pk).update(snapshot_html=issue_render(issue).html)
    page = client.get("/archive/dwv/2026/03/strike/").content.decode()
    assert '<p class="subtitle">Day two</p>' in page
    assert '<p class="byline">By Ana Ruiz</p>' in page


def test_published_letters_appear_under_the_article_without_addresses(client, mailing_list):
    from issues.models import Comment

    issue = sent(mailing_list, "Strike", when=local(2026, 3, 4))
    now = timezone.now()
    Comment.objects.create(
        provider="t",
        event_id="1",
        issue=issue,
        sender_email="ana@example.org",
        sender_name="Ana",
        text="Solidarity <b>forever</b>.",
        published=True,
        published_at=now,
        consent_at=now,
    )
    Comment.objects.create(provider="t", event_id="2", issue=issue, sender_email="bo@example.org", text="Not public.")
    page = client.get("/archive/dwv/2026/03/strike/").content.decode()
    letters = page[page.index('aria-labelledby="letters-heading"') :]
    assert "Solidarity &lt;b&gt;forever&lt;/b&gt;." in letters and "Ana</h3>" in letters
    assert "Not public." not in page and "ana@example.org" not in page


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ('"union local"', ["Contract news"]),
        ('"local union"', []),
        ("union contract", ["Contract news"]),
        ('"union local" picket', []),
        ("strike", ["Strike vote", "Strikes spread"]),
    ],
)
def test_search_handles_quoted_phrases_and_several_words(client, mailing_list, query, found):
    sent(mailing_list, "Contract news", when=local(2026, 1, 5), body="The union local signed the contract.")
    sent(mailing_list, "Strike vote", when=local(2026, 2, 5), body="A local vote on the union's strike.")
    sent(mailing_list, "Strikes spread", when=local(2026, 3, 5), body="Walkouts everywhere: strike!")
    page = client.get("/archive/dwv/", {"q": query}).content.decode()
    titles = re.findall(r'<h2><a href="[^"]+">([^<]+)</a></h2>', page)
    assert sorted(titles) == sorted(found)


def test_search_terms_split_phrases_and_words():
    from issues.archive.selectors import archive_search_terms

    assert archive_search_terms('  "union  local"  Strike strike "" "open') == ["union local", "Strike", "open"]
    assert len(archive_search_terms("w " * 500)) == 1
    assert len(archive_search_terms(" ".join(f"w{n}" for n in range(500)))) == 20

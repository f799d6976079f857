import re
from pathlib import Path

import pytest
from django.utils import timezone

from issues.models import Issue
from issues.rendering import (
    PREFERENCES_URL,
    UNSUBSCRIBE_URL,
    issue_render,
    issue_render_archive,
    markdown_render,
    rendered_personalize,
)
from subscriptions.models import MailingList

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


@pytest.fixture
def mailing_list(db):
    return MailingList.objects.create(
        name="Detroit Workers' Voice",
        slug="dwv",
        from_name="DWV",
        from_email="list@dwv.example.org",
        footer_text=fixture("footer.txt"),
    )


@pytest.fixture
def article(mailing_list):
    issue = Issue.objects.create(
        title="The plant is closing",
        subtitle="Sixty left at the Dearborn line",
        byline="By Ana Ruiz",
        body=fixture("article.txt"),
    )
    issue.lists.add(mailing_list)
    return issue


def test_plain_text_article_renders_to_the_expected_html(article):
    assert issue_render_archive(article) + "\n" == fixture("article.html")


def test_plain_text_part_keeps_the_article_as_written_with_urls_and_footer(article, settings):
    text = issue_render(article).text
    web = f"Read it on the web: {settings.SITE_URL}/archive/dwv/issues/{article.pk}/\n"
    assert web in text
    assert text.replace(web, "") == fixture("article-text.txt")


def test_mail_has_masthead_preheader_and_web_link(article, mailing_list, settings, client):
    settings.SITE_URL = "https://list.example.org"
    Issue.objects.filter(pk=article.pk).update(preheader="Sixty jobs go; the union answers")
    article.refresh_from_db()
    html = issue_render(article).html
    assert re.search(r'<div class="preheader"[^>]*>Sixty jobs go; the union answers', html)
    assert f'href="https://list.example.org/archive/dwv/issues/{article.pk}/"' in html
    assert re.search(r"<div class=\"masthead\"[^>]*>Detroit Workers' Voice</div>", html)
    assert "#9b1c1c" in html
    MailingList.objects.filter(pk=mailing_list.pk).update(
        logo_url="https://cdn.example.org/logo.png", accent_colour="#1d4ed8"
    )
    article = Issue.objects.get(pk=article.pk)
    html = issue_render(article).html
    assert re.search(r"<img src=\"https://cdn.example.org/logo.png\" alt=\"Detroit Workers' Voice\"", html)
    assert "#1d4ed8" in html and "#9b1c1c" not in html.split("<body")[1]
    # A list without a public archive has no web link.
    MailingList.objects.filter(pk=mailing_list.pk).update(archive_enabled=False)
    article = Issue.objects.get(pk=article.pk)
    rendered = issue_render(article)
    assert "Read it on the web" not in rendered.html and "Read it on the web" not in rendered.text


def test_accent_colour_cannot_inject_css(mailing_list):
    from django.core.exceptions import ValidationError
    from django.db import IntegrityError, transaction

    mailing_list.accent_colour = "red;}</style><script>x</script>"
    with pytest.raises(ValidationError):
        mailing_list.full_clean()
    with pytest.raises(IntegrityError), transaction.atomic():
        MailingList.objects.filter(pk=mailing_list.pk).update(accent_colour="#12345g")
    mailing_list.logo_url = "javascript:alert(1)"
    mailing_list.accent_colour = "#123456"
    with pytest.raises(ValidationError):
        mailing_list.full_clean()


def test_web_link_leads_to_the_permanent_archive_address_once_sent(article, client):
    link = f"/archive/dwv/issues/{article.pk}/"
    assert client.get(link).status_code == 404  # not sent yet
    when = timezone.now()
    Issue.objects.filter(pk=article.pk).update(status="sent", sent_at=when, started_at=when)
    response = client.get(link)
    local = timezone.localtime(when)
    assert response.status_code == 302
    assert response["Location"] == f"/archive/dwv/{local:%Y}/{local:%m}/the-plant-is-closing/"


def test_html_mail_is_a_full_document_with_inline_css_footer_and_placeholders(article):
    html = issue_render(article).html
    assert html.startswith("<!DOCTYPE html>")
    assert '<meta name="color-scheme" content="light dark">' in html
    assert "prefers-color-scheme: dark" in html  # kept in a <style> block
    assert '<h1 style="' in html
    assert "<title>The plant is closing</title>" in html
    assert "Detroit Workers' Voice, PO Box 1, Detroit MI 48201" in html
    assert f'href="{UNSUBSCRIBE_URL}"' in html
    assert f'href="{PREFERENCES_URL}"' in html
    assert 'href="https://example.com/annual-report.pdf"' in html
    assert 'href="http://local600.example.org/notes"' in html


def test_subject_is_the_title_on_one_line(mailing_list):
    issue = Issue.objects.create(title="  Strike\r\nvote  ", subtitle="Not in the subject", body="x")
    assert issue_render(issue).subject == "Strike vote"


def test_placeholders_survive_sanitising_and_inlining_then_personalize_fills_them(article):
    rendered = issue_render(article)
    for part in (rendered.html, rendered.text):
        assert part.count(UNSUBSCRIBE_URL) == 1
        assert part.count(PREFERENCES_URL) == 1
        filled = rendered_personalize(
            part, unsubscribe_url="https://s.example/u/TOKEN-1/", preferences_url="https://s.example/p/TOKEN-2/"
        )
        assert "%%" not in filled
        assert "https://s.example/u/TOKEN-1/" in filled
        assert "https://s.example/p/TOKEN-2/" in filled


def test_archive_html_has_no_footer_and_no_placeholders(article):
    html = issue_render_archive(article)
    assert "%%" not in html
    assert "Unsubscribe" not in html
    assert "PO Box 1" not in html


def test_archive_of_a_sent_issue_shows_the_snapshot_not_later_edits(article):
    rendered = issue_render(article)
    Issue.objects.filter(pk=article.pk).update(
        snapshot_subject=rendered.subject,
        snapshot_html=rendered.html,
        snapshot_text=rendered.text,
        snapshot_at=timezone.now(),
        status="sent",
        sent_at=timezone.now(),
        body="Edited afterwards behind the database's back.",
    )
    article.refresh_from_db()
    html = issue_render_archive(article)
    assert html + "\n" == fixture("article.html")
    assert "style=" not in html


@pytest.mark.parametrize(
    ("source", "forbidden"),
    [
        ("Hello <script>alert('x')</script> world", "<script"),
        ("<script>\nalert('x')\n</script>", "alert"),
        ('<img src="x.png" onerror="alert(1)">', "onerror"),
        ('<a href="#" onclick="steal()">click</a>', "onclick"),
        ("[click](javascript:alert(1))", 'href="javascript:'),
        ('<a href="javascript:alert(1)">click</a>', "javascript:"),
        ('<a href="JaVaScRiPt:alert(1)">click</a>', "avascript"),
        ('<iframe src="https://evil.example/"></iframe>', "<iframe"),
        ("<style>body{display:none}</style>", "<style"),
        ('<form action="https://evil.example/"><input name="p"></form>', "<form"),
        ('<svg onload="alert(1)"></svg>', "onload"),
        ('<a href="data:text/html,<script>alert(1)</script>">x</a>', "data:"),
    ],
)
def test_sanitiser_removes_anything_that_could_run_script(source, forbidden):
    assert forbidden.lower() not in markdown_render(source).lower()


def test_sanitiser_keeps_harmless_raw_html():
    html = markdown_render("Some <strong>bold</strong> and <em>slanted</em> words.")
    assert html == "<p>Some <strong>bold</strong> and <em>slanted</em> words.</p>\n"


def test_plain_text_part_drops_raw_html_tags_but_keeps_link_targets(mailing_list):
    issue = Issue.objects.create(
        title="Links", body="See [the report](https://example.com/r) and <b>this</b>.<script>alert(1)</script>"
    )
    text = issue_render(issue).text
    assert "See the report <https://example.com/r> and this." in text
    assert "<b>" not in text
    assert "alert" not in text


def test_indented_paragraphs_stay_paragraphs_not_code():
    assert markdown_render("    An indented first line.\n\n    Another.") == (
        "<p>An indented first line.</p>\n<p>Another.</p>\n"
    )

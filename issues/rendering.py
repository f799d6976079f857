"""Render an issue into the HTML and plain-text parts of its mail, and into the archive.

An issue is rendered once, when sending starts, into a frozen snapshot that
still holds two placeholders; each reader's copy only has its own links
filled in (rendered_personalize), it is never rendered again.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import css_inline
import nh3
from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse
from markdown_it import MarkdownIt

# The placeholders live with the rules that confine them; their names stay importable from here.
from issues.placeholders import MARKS, PREFERENCES_URL, UNSUBSCRIBE_URL, html_confine, plain_confine, text_confine

if TYPE_CHECKING:
    from issues.models import Issue
    from subscriptions.models import MailingList

# The article's HTML sits between these comments inside the frozen snapshot,
# so the archive can show exactly what was sent, without the footer.
ARTICLE_START = "<!--dwvlist:article-start-->"
ARTICLE_END = "<!--dwvlist:article-end-->"

ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}
DEFAULT_ACCENT = "#9b1c1c"
_HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
# Classes are harmless and let the article's own parts (subtitle, byline) be styled.
_ALLOWED_ATTRIBUTES = {**nh3.ALLOWED_ATTRIBUTES, "p": {"class"}, "div": {"class"}}

_INLINE_LINK = re.compile(r"!?\[([^\]\n]*)\]\(\s*<?((?:[^\s()<>]|\([^\s()<>]*\))+)>?(?:\s+\"[^\"\n]*\")?\s*\)")
_SCRIPT_OR_STYLE = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
# A raw HTML tag, but not an autolink like <https://...> (no colon after the name).
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")


@dataclass(frozen=True)
class RenderedIssue:
    subject: str
    html: str
    text: str
    # Per-reader placeholders the editor's text had outside links to this site,
    # taken out (issues/placeholders.py); the preview warns about them.
    placeholders_dropped: int = 0


def _markdown() -> MarkdownIt:
    # CommonMark with bare URLs linkified. Indented code blocks are off: a
    # pasted plain-text article often indents its paragraphs, and they must
    # stay paragraphs.
    md = MarkdownIt("commonmark", {"linkify": True, "html": True})
    md.enable(["linkify", "strikethrough", "table"])
    md.disable("code")
    return md


def markdown_sanitize(html: str) -> str:
    """Return html with anything that could run script removed."""
    return nh3.clean(
        html, attributes=_ALLOWED_ATTRIBUTES, url_schemes=ALLOWED_URL_SCHEMES, link_rel="noopener noreferrer"
    )


def markdown_render(source: str) -> str:
    """Return the sanitised HTML of a Markdown or plain-text source."""
    source = source.replace("\r\n", "\n").replace("\r", "\n")
    return markdown_sanitize(_markdown().render(source))


def _one_line(value: str) -> str:
    return " ".join(value.split())


def _primary_list(issue: Issue) -> MailingList | None:
    if issue.pk is None:
        return None
    return issue.lists.order_by("id").first()


def _article_html(issue: Issue) -> str:
    return render_to_string(
        "issues/article.html",
        {
            "subtitle": _one_line(issue.subtitle),
            "byline": _one_line(issue.byline),
            "body_html": markdown_render(issue.body),
        },
    ).strip()


def _text_body(source: str) -> str:
    # Markdown reads as plain text already; raw HTML tags go, and inline
    # links would hide their URL, so it is spelt out after the link text.
    source = source.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    source = _HTML_TAG.sub("", _SCRIPT_OR_STYLE.sub("", source))
    return _INLINE_LINK.sub(lambda m: f"{m.group(1)} <{m.group(2)}>" if m.group(1) else f"<{m.group(2)}>", source)


def _accent(mailing_list: MailingList | None) -> str:
    # It goes into a <style> block: only a plain #rrggbb ever does.
    value = mailing_list.accent_colour if mailing_list else ""
    return value if _HEX_COLOUR.match(value or "") else DEFAULT_ACCENT


def issue_web_url(*, issue: Issue, mailing_list: MailingList | None) -> str:
    """Return the "read it on the web" address of the issue, or "" when its list has no public archive.

    It names the issue by id and answers with a redirect to the permanent
    archive address, which is known only once the issue has been sent.
    """
    if issue.pk is None or mailing_list is None or not (mailing_list.is_public and mailing_list.archive_enabled):
        return ""
    path = reverse("archive:issue_link", kwargs={"list_slug": mailing_list.slug, "issue_id": issue.pk})
    return settings.SITE_URL + path


def issue_render(issue: Issue, *, mailing_list: MailingList | None = None) -> RenderedIssue:
    """Render the issue's mail with the footer and the two link placeholders.

    The footer, masthead and list name come from mailing_list when given (an
    unsaved draft in the live preview), else from the issue's first list.
    Placeholders the editor's own text has outside links to this site are
    taken out first, so no reader's link ever reaches another host.
    """
    site_url = settings.SITE_URL
    mailing_list = mailing_list or _primary_list(issue)
    footer_text = (mailing_list.footer_text if mailing_list else "").strip()
    subject, dropped = plain_confine(_one_line(issue.title))
    article_html, count = html_confine(_article_html(issue), site_url=site_url)
    dropped += count
    footer_html, count = html_confine(markdown_render(footer_text), site_url=site_url) if footer_text else ("", 0)
    dropped += count
    web_url = issue_web_url(issue=issue, mailing_list=mailing_list)
    context = {
        "preheader": _one_line(issue.preheader),
        "web_url": web_url,
        "accent": _accent(mailing_list),
        "logo_url": mailing_list.logo_url if mailing_list else "",
        "subject": subject,
        "title": subject,
        "article_start": ARTICLE_START,
        "article_html": article_html,
        "article_end": ARTICLE_END,
        "footer_html": footer_html,
        "list_name": mailing_list.name if mailing_list else "",
        "subscribe_address": mailing_list.subscribe_address if mailing_list and mailing_list.subscribe_by_mail else "",
        "unsubscribe_url": UNSUBSCRIBE_URL,
        "preferences_url": PREFERENCES_URL,
    }
    html = render_to_string("issues/email.html", context)
    # Keep the <style> block: the dark-mode media query cannot be inlined.
    html = css_inline.CSSInliner(keep_style_tags=True).inline(html)

    head = subject
    if issue.subtitle.strip():
        head += "\n" + _one_line(issue.subtitle)
    head += "\n" + "=" * min(len(subject), 72)
    if issue.byline.strip():
        head += "\n\n" + _one_line(issue.byline)
    head = plain_confine(head)[0]  # counted in the HTML already
    footer_lines = ["-- "]
    if footer_text:
        footer_lines.append(text_confine(_text_body(footer_text), site_url=site_url)[0])
    if web_url:
        footer_lines.append(f"Read it on the web: {web_url}")
    if mailing_list and mailing_list.subscribe_by_mail:
        footer_lines.append(f"Subscribe by writing to {mailing_list.subscribe_address}")
    footer_lines.append(f"Unsubscribe: {UNSUBSCRIBE_URL}")
    footer_lines.append(f"Preferences: {PREFERENCES_URL}")
    body, count = text_confine(_text_body(issue.body), site_url=site_url)
    dropped = max(dropped, count)
    text = f"{head}\n\n{body}\n\n" + "\n".join(footer_lines) + "\n"
    return RenderedIssue(subject=subject, html=html, text=text, placeholders_dropped=dropped)


def issue_rendered(issue: Issue) -> RenderedIssue:
    """Return what readers got (the frozen snapshot) or would get (a fresh render)."""
    if issue.snapshot_html:
        return RenderedIssue(subject=issue.snapshot_subject, html=issue.snapshot_html, text=issue.snapshot_text)
    return issue_render(issue)


def issue_render_archive(issue: Issue) -> str:
    """Return the sanitised article (subtitle, byline, body) for the archive page.

    A sent issue shows its frozen snapshot; an issue not yet sent is
    rendered from its current text.
    """
    snapshot = issue.snapshot_html or ""
    start = snapshot.find(ARTICLE_START)
    end = snapshot.find(ARTICLE_END, start + 1)
    if start != -1 and end != -1:
        # Inline styles and the markers go; the archive has its own stylesheet.
        article = markdown_sanitize(snapshot[start + len(ARTICLE_START) : end]).strip()
    else:
        article = _article_html(issue)
    # A link the editor made to a reader's own page has no reader on the web.
    for mark in MARKS:
        article = article.replace(mark, "")
    return article


def rendered_personalize(content: str, *, unsubscribe_url: str, preferences_url: str) -> str:
    """Fill one reader's links into a rendered part."""
    return content.replace(UNSUBSCRIBE_URL, unsubscribe_url).replace(PREFERENCES_URL, preferences_url)


DESCRIPTION_LENGTH = 200


def archive_description(*, issue: Issue, article_html: str) -> str:
    """Return a short plain-text summary of the issue for link previews (Open Graph, search results)."""
    if issue.subtitle.strip():
        return _one_line(issue.subtitle)[:DESCRIPTION_LENGTH]
    body = article_html.split('<div class="body">', 1)[-1]
    text = _one_line(html.unescape(re.sub(r"<[^>]+>", " ", body)))
    if len(text) <= DESCRIPTION_LENGTH:
        return text
    return text[: DESCRIPTION_LENGTH - 1].rsplit(" ", 1)[0] + "…"

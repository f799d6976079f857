"""Letters readers agreed to publish appear under their issue in the archive and in the list's feed."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from issues.comments.services import comment_publish, comment_unpublish
from issues.models import Comment
from tests.issues.test_archive import local, mailing_list, sent  # noqa: F401 (the fixture)

PAGE = "/archive/dwv/2026/03/strike-vote/"


@pytest.fixture
def letter(mailing_list):  # noqa: F811
    issue = sent(mailing_list, "Strike vote", when=local(2026, 3, 4))
    editor = User.objects.create_user("eddie", is_staff=True)
    comment = Comment.objects.create(
        provider="postmark",
        event_id="e1",
        issue=issue,
        sender_email="zoe@example.org",
        sender_name='Zoë "Z" Ünal',
        subject="Re: Strike vote",
        text="We stand with you.\n<script>alert(1)</script>",
    )
    comment_publish(comment=comment, user=editor)
    comment.refresh_from_db()
    return comment


def test_a_published_letter_is_on_its_issue_page_with_the_writers_name_only(client, letter):
    page = client.get(PAGE).content.decode()
    assert '<h2 id="letters-heading">Letters</h2>' in page
    assert f'id="letter-{letter.pk}"' in page
    assert "Zoë &quot;Z&quot; Ünal: Re: Strike vote" in page
    assert "We stand with you." in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "zoe@example.org" not in page and "<script>alert" not in page


def test_an_unpublished_or_unconsented_comment_is_not_shown(client, letter):
    Comment.objects.create(
        provider="postmark", event_id="e2", issue=letter.issue, sender_email="x@example.org", text="Private."
    )
    assert "Private." not in client.get(PAGE).content.decode()
    comment_unpublish(comment=letter)
    page = client.get(PAGE).content.decode()
    assert "We stand with you." not in page and "letters-heading" not in page


def test_the_feed_carries_the_letter_marked_as_one(client, letter):
    feed = client.get("/archive/dwv/feed.atom").content.decode()
    assert 'Letter from Zoë "Z" Ünal on “Strike vote”' in feed.replace("&quot;", '"')
    assert '<category term="letter"' in feed and '<category term="issue"' in feed
    assert f"{PAGE}#letter-{letter.pk}" in feed
    assert "zoe@example.org" not in feed
    comment_unpublish(comment=letter)
    assert "Letter from" not in client.get("/archive/dwv/feed.atom").content.decode()

"""Opt-in tracking on the SMTP path: signed per-reader links, no open redirect, events through the same rules."""

from __future__ import annotations

import email
import email.policy
import re

import pytest

from issues.delivery.tracking import tracking_token_make
from issues.models import Delivery, DeliveryEvent
from issues.selectors import issue_report
from tests.feedback.bounces.conftest import issue_sent
from tests.issues.ledger_helpers import list_make, readers_make


def _html_of(raw: bytes) -> str:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    return message.get_body(("html",)).get_content()


def _copies(sink) -> dict[str, str]:
    """Return each reader's HTML part by address."""
    return {m["To"]: _html_of(raw) for m, raw in zip(sink.tally.parsed(), sink.tally.messages, strict=True)}


@pytest.mark.django_db
def test_readers_of_a_tracking_list_get_signed_links_and_a_pixel_others_the_plain_article(smtp_sink):
    tracked = list_make("tracked", tracking_enabled=True)
    readers_make(tracked, 2)
    issue_sent(mailing_list=tracked)
    plain = list_make("plain")
    readers_make(plain, 1, start=10)
    issue_sent(mailing_list=plain)
    copies = _copies(smtp_sink)
    tracked_copies = [copies["reader000000@example.org"], copies["reader000001@example.org"]]
    for html in tracked_copies:
        assert 'href="https://example.org/a.' not in html
        assert re.search(r'href="https://list\.example\.org/t/c/[0-9a-z]+\.0\.[a-z2-7]+/"', html)
        assert re.search(r'<img src="https://list\.example\.org/t/o/[0-9a-z]+\.o\.[a-z2-7]+/"', html)
        assert "/u/" in html  # the unsubscribe link is never tracked
    assert tracked_copies[0] != tracked_copies[1]
    untracked = copies["reader000010@example.org"]
    assert "/t/c/" not in untracked and "/t/o/" not in untracked and 'href="https://example.org/a."' not in untracked
    assert "https://example.org/a" in untracked


@pytest.mark.django_db
def test_a_click_goes_where_the_editor_pointed_and_is_recorded_once_with_the_open(client, smtp_sink):
    tracked = list_make("tracked", tracking_enabled=True)
    readers_make(tracked, 1)
    issue = issue_sent(mailing_list=tracked)
    html = next(iter(_copies(smtp_sink).values()))
    click = re.search(r'href="https://list\.example\.org(/t/c/[^"]+)"', html).group(1)
    for _ in range(2):
        response = client.get(click)
        assert response.status_code == 302 and response["Location"] == "https://example.org/a"
    delivery = Delivery.objects.get(issue=issue)
    assert delivery.clicked_at is not None and delivery.opened_at is not None
    assert list(DeliveryEvent.objects.values_list("provider", "event_type")) == [("smtp", "clicked")]
    report = issue_report(issue=issue)
    assert (report["opened"], report["clicked"]) == (1, 1)


@pytest.mark.django_db
def test_the_pixel_records_one_open(client, smtp_sink):
    tracked = list_make("tracked", tracking_enabled=True)
    readers_make(tracked, 1)
    issue = issue_sent(mailing_list=tracked)
    pixel = re.search(r'<img src="https://list\.example\.org(/t/o/[^"]+)"', next(iter(_copies(smtp_sink).values())))
    for _ in range(3):
        response = client.get(pixel.group(1))
        assert response.status_code == 200 and response["Content-Type"] == "image/gif"
    assert DeliveryEvent.objects.filter(event_type="opened").count() == 1
    assert Delivery.objects.get(issue=issue).opened_at is not None


@pytest.mark.django_db
def test_forged_or_out_of_range_links_go_nowhere(client, smtp_sink):
    tracked = list_make("tracked", tracking_enabled=True)
    readers_make(tracked, 1)
    issue = issue_sent(mailing_list=tracked)
    delivery = Delivery.objects.get(issue=issue)
    good = tracking_token_make(delivery_id=delivery.pk, link=0)
    value, _, signature = good.rpartition(".")
    for token in (
        f"{value}.{signature[:-1]}{'a' if signature[-1] != 'a' else 'b'}",  # tampered signature
        tracking_token_make(delivery_id=delivery.pk, link=999),  # genuine but no such link
        tracking_token_make(delivery_id=delivery.pk + 1000, link=0),  # no such delivery
        "https%3A%2F%2Fevil.example",
        "x" * 500,
    ):
        response = client.get(f"/t/c/{token}/")
        assert response.status_code == 404
        assert "evil" not in response.get("Location", "")
    assert client.get(f"/t/o/{good}/").status_code == 404  # a click token is no pixel
    assert DeliveryEvent.objects.count() == 0


@pytest.mark.django_db
def test_a_list_that_turned_tracking_off_since_records_nothing_but_the_link_still_works(client, smtp_sink):
    tracked = list_make("tracked", tracking_enabled=True)
    readers_make(tracked, 1)
    issue = issue_sent(mailing_list=tracked)
    tracked.tracking_enabled = False
    tracked.save()
    token = tracking_token_make(delivery_id=Delivery.objects.get(issue=issue).pk, link=0)
    assert client.get(f"/t/c/{token}/")["Location"] == "https://example.org/a"
    assert DeliveryEvent.objects.count() == 0


@pytest.mark.django_db
def test_the_preferences_page_says_whether_the_readers_lists_track(client):
    from subscriptions.links import preferences_url

    tracked = list_make("tracked", name="Shop Floor", tracking_enabled=True)
    plain = list_make("plain", name="Quiet List")
    (reader,) = readers_make(tracked, 1)
    (other,) = readers_make(plain, 1, start=5)
    page = client.get(preferences_url(subscriber_id=reader).split("8000", 1)[-1].split("example.org", 1)[-1])
    assert "Shop Floor records whether you open an issue" in page.content.decode()
    page = client.get(preferences_url(subscriber_id=other).split("8000", 1)[-1].split("example.org", 1)[-1])
    assert "None of your lists records whether you open an issue" in page.content.decode()

"""The subscribers screen: search any part of an address or name, filters, keyset pages, a reader's page, actions."""

from __future__ import annotations

import datetime
import re

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from issues.models import Comment, Delivery, DeliveryEvent, Issue
from subscriptions import tasks
from subscriptions.addresses import email_hash
from subscriptions.models import MailingList, Subscriber, Subscription, Suppression
from tests.subscriptions.conftest import outbox_messages

PASSWORD = "a-long-test-password-42"


def _staff(username: str, group: str) -> Client:
    user = User.objects.create_user(username, f"{username}@staff.example.org", PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def admin(db):
    return _staff("ada", "Admins")


@pytest.fixture
def editor(db):
    return _staff("eddie", "Editors")


def _reader(email, *, name="", mailing_list=None, status="active", source="form", created=None):
    reader = Subscriber.objects.create(email=email, name=name, created_at=created or timezone.now())
    if mailing_list is not None:
        Subscription.objects.create(
            subscriber=reader,
            mailing_list=mailing_list,
            status=status,
            consent_source=source,
            consent_detail="web form, client 192.0.2.7",
            confirmed_at=timezone.now() if status == "active" else None,
            unsubscribed_at=timezone.now() if status == "unsubscribed" else None,
            unsubscribe_source="one_click" if status == "unsubscribed" else "",
        )
    return reader


def _found(response) -> list[str]:
    return re.findall(
        r'<td class="card-title"><a href="/editor/subscribers/\d+/">([^<]+)</a>', response.content.decode()
    )


def _search(client, **params):
    return client.get(reverse("staff:readers"), params)


# --- Search ---------------------------------------------------------------------


def test_search_finds_any_part_of_an_address_or_name(admin, news):
    _reader("treasurer@union-local600.org", name="Ana Ruiz", mailing_list=news)
    _reader("ruizfan@example.org", mailing_list=news)
    _reader("someone@example.org", name="José Müller", mailing_list=news)
    assert _found(_search(admin, q="union-local")) == ["treasurer@union-local600.org"]
    assert sorted(_found(_search(admin, q="RUIZ"))) == ["ruizfan@example.org", "treasurer@union-local600.org"]
    assert _found(_search(admin, q="müller")) == ["someone@example.org"]
    assert _found(_search(admin, q="  local600  ")) == ["treasurer@union-local600.org"]
    assert _found(_search(admin, q="nobody-here")) == []


def test_like_wildcards_in_a_search_are_taken_literally(admin, news):
    _reader("a_b@example.org", mailing_list=news)
    _reader("axb@example.org", mailing_list=news)
    _reader("100%sure@example.org", mailing_list=news)
    assert _found(_search(admin, q="a_b")) == ["a_b@example.org"]
    assert _found(_search(admin, q="0%s")) == ["100%sure@example.org"]


def test_a_one_or_two_character_search_matches_the_start(admin, news):
    _reader("ab@example.org", mailing_list=news)
    _reader("xab@example.org", mailing_list=news)
    response = _search(admin, q="ab")
    assert _found(response) == ["ab@example.org"]
    assert "matches the start of addresses and names only" in response.content.decode()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"q": "line\nbreak"}, "control characters"),
        ({"q": "x" * 255}, "at most 254 characters"),
        ({"status": "hacked"}, "Select a valid choice"),
        ({"mailing_list": "999999"}, "Select a valid choice"),
        ({"joined_from": "2026-13-45"}, "Enter a valid date"),
        ({"joined_from": "2026-05-02", "joined_to": "2026-05-01"}, "The end date is before the start date"),
        ({"after": "1; DROP TABLE"}, "That page link is broken"),
    ],
)
def test_bad_search_input_gets_a_clear_error(admin, news, params, message):
    _reader("keep@example.org", mailing_list=news)
    response = _search(admin, **params)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert Subscriber.objects.count() == 1


def test_filters_by_list_status_source_suppression_and_date(admin, news, notes):
    old = timezone.make_aware(datetime.datetime(2025, 1, 10, 12))
    _reader("a@example.org", mailing_list=news, status="active", source="form", created=old)
    _reader("b@example.org", mailing_list=news, status="pending", source="import")
    _reader("c@example.org", mailing_list=notes, status="unsubscribed", source="admin")
    d = _reader("d@example.org", mailing_list=notes)
    Suppression.objects.create(email_hash=email_hash(d.email), email=d.email, reason="hard_bounce")
    assert sorted(_found(_search(admin, mailing_list=news.pk))) == ["a@example.org", "b@example.org"]
    assert _found(_search(admin, status="pending")) == ["b@example.org"]
    assert _found(_search(admin, status="unsubscribed")) == ["c@example.org"]
    assert _found(_search(admin, source="import")) == ["b@example.org"]
    assert _found(_search(admin, status="suppressed")) == ["d@example.org"]
    assert _found(_search(admin, joined_to="2025-01-10")) == ["a@example.org"]
    assert "a@example.org" not in _found(_search(admin, joined_from="2025-01-11"))
    assert _found(_search(admin, mailing_list=notes.pk, status="active", q="example")) == ["d@example.org"]


def test_pages_go_by_keyset_newest_first_without_counting(admin, news):
    Subscriber.objects.bulk_create(Subscriber(email=f"r{n:03d}@example.org") for n in range(120))
    with CaptureQueriesContext(connection) as queries:
        first = _search(admin)
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert not [sql for sql in counts if "subscriptions_subscriber" in sql]
    shown = _found(first)
    assert shown[0] == "r119@example.org" and len(shown) == 50
    html = first.content.decode()
    assert "Newer</a>" not in html
    older = re.search(r'href="\?(after=\d+)" rel="next">Older', html).group(1)
    second = admin.get(reverse("staff:readers") + "?" + older)
    assert _found(second)[0] == "r069@example.org"
    third_link = re.search(r'href="\?(after=\d+)" rel="next">Older', second.content.decode()).group(1)
    third = admin.get(reverse("staff:readers") + "?" + third_link)
    assert _found(third) == [f"r{n:03d}@example.org" for n in range(19, -1, -1)]
    assert 'rel="next"' not in third.content.decode()
    back = re.search(r'href="\?(before=\d+)" rel="prev">Newer', third.content.decode()).group(1)
    assert _found(admin.get(reverse("staff:readers") + "?" + back)) == _found(second)


def test_filters_are_kept_across_pages(admin, news):
    for n in range(60):
        _reader(f"keep{n:02d}@example.org", mailing_list=news)
    _reader("other@example.org", mailing_list=news)
    html = _search(admin, q="keep").content.decode()
    link = re.search(r'href="(\?[^"]+)" rel="next">Older', html).group(1).replace("&amp;", "&")
    assert "q=keep" in link
    assert _found(admin.get(reverse("staff:readers") + link)) == [f"keep{n:02d}@example.org" for n in range(9, -1, -1)]


# --- A reader's page ----------------------------------------------------------------


def test_reader_page_shows_consent_deliveries_events_and_replies(admin, news, notes):
    reader = _reader("rosa@example.org", name="Rosa", mailing_list=news)
    Subscription.objects.create(
        subscriber=reader,
        mailing_list=notes,
        status="unsubscribed",
        consent_source="import",
        unsubscribed_at=timezone.now(),
        unsubscribe_source="complaint",
    )
    issue = Issue.objects.create(title="Strike vote", body="x", status="sent", sent_at=timezone.now())
    delivery = Delivery.objects.create(
        issue=issue,
        subscriber=reader,
        mailing_list=news,
        email=reader.email,
        status="bounced",
        sent_at=timezone.now(),
        attempts=1,
        last_error="550 5.1.1 mailbox unknown",
        opened_at=timezone.now(),
    )
    DeliveryEvent.objects.create(
        provider="mailgun",
        event_id="e1",
        event_type="bounced",
        delivery=delivery,
        recipient=reader.email,
        reject_reason="bounced",
        description="No such user",
    )
    DeliveryEvent.objects.create(
        provider="mailgun", event_id="e2", event_type="opened", delivery=delivery, recipient=reader.email
    )
    Comment.objects.create(
        provider="t",
        event_id="c1",
        subscriber=reader,
        sender_email=reader.email,
        subject="Re: Strike vote",
        issue=issue,
    )
    html = admin.get(reverse("staff:reader", args=[reader.pk])).content.decode()
    assert '<h1 class="reader-address">rosa@example.org</h1>' in html
    assert "Web form, " in html and "web form, client 192.0.2.7" in html
    assert "Left Notes on" in html and "(spam complaint)" in html
    assert "Gets News." in html
    assert "550 5.1.1 mailbox unknown" in html and "No such user" in html
    assert "Re: Strike vote" in html
    # News does not track: no opens shown, neither the event nor the time.
    assert "Opened" not in html and '<td class="card-title">opened</td>' not in html
    News = MailingList.objects.filter(pk=news.pk)
    News.update(tracking_enabled=True)
    html = admin.get(reverse("staff:reader", args=[reader.pk])).content.decode()
    assert "Opened" in html and '<td class="card-title">opened</td>' in html


def test_unknown_reader_is_404(admin):
    assert admin.get(reverse("staff:reader", args=[999999])).status_code == 404
    assert admin.get("/editor/subscribers/999999/erase/").status_code == 404


# --- Who may do what ------------------------------------------------------------------


def test_editors_search_and_read_but_cannot_act(editor, news):
    reader = _reader("rosa@example.org", mailing_list=news)
    assert _found(_search(editor, q="rosa")) == ["rosa@example.org"]
    html = editor.get(reverse("staff:reader", args=[reader.pk])).content.decode()
    assert "Erase the reader" not in html and "Unsubscribe from every list" not in html
    for action in ("unsubscribe", "resend", "suppress", "erase"):
        url = reverse("staff:reader_action", args=[reader.pk, action])
        assert editor.get(url).status_code == 403
        assert editor.post(url, {"list": "all"}).status_code == 403
    assert Subscription.objects.get().status == "active" and not Suppression.objects.exists()


def test_anonymous_is_sent_to_log_in(client, news):
    reader = _reader("rosa@example.org", mailing_list=news)
    assert client.get(reverse("staff:readers"))["Location"].startswith("/editor/login/")
    response = client.post(reverse("staff:reader_action", args=[reader.pk, "erase"]))
    assert response.status_code == 302 and Subscriber.objects.exists()


# --- Actions, each confirmed first -----------------------------------------------------


def test_every_action_asks_first_and_a_get_changes_nothing(admin, news):
    reader = _reader("rosa@example.org", mailing_list=news)
    for action, words in [
        ("unsubscribe", "They will no longer get any list."),
        ("resend", "Nothing waits for confirmation"),
        ("suppress", "will never be mailed again"),
        ("erase", "This cannot be undone."),
    ]:
        response = admin.get(reverse("staff:reader_action", args=[reader.pk, action]), {"list": "all"})
        assert response.status_code == 200 and words in response.content.decode()
    assert Subscription.objects.get().status == "active" and not Suppression.objects.exists()
    assert admin.get(reverse("staff:reader_action", args=[reader.pk, "delete-everything"])).status_code == 404


def test_unsubscribe_one_list_or_all_records_the_admin_as_source(admin, news, notes):
    reader = _reader("rosa@example.org", mailing_list=news)
    Subscription.objects.create(
        subscriber=reader, mailing_list=notes, status="active", consent_source="form", confirmed_at=timezone.now()
    )
    url = reverse("staff:reader_action", args=[reader.pk, "unsubscribe"])
    page = admin.post(url, {"list": str(news.pk)}, follow=True).content.decode()
    assert "Unsubscribed from News." in page
    assert dict(Subscription.objects.values_list("mailing_list__slug", "status")) == {
        "news": "unsubscribed",
        "notes": "active",
    }
    assert Subscription.objects.get(mailing_list=news).unsubscribe_source == "admin"
    assert "Unsubscribed from 1 list." in admin.post(url, {"list": "all"}, follow=True).content.decode()
    assert "Already off every list." in admin.post(url, {"list": "all"}, follow=True).content.decode()
    other = MailingList.objects.create(name="X", slug="x", from_name="X", from_email="x@example.org")
    assert admin.post(url, {"list": str(other.pk)}).status_code == 404
    assert admin.post(url, {"list": "abc"}).status_code == 404


def test_resend_confirmation_queues_one_mail_within_the_interval(
    admin, news, outbox, django_capture_on_commit_callbacks
):
    reader = _reader("pending@example.org", mailing_list=news, status="pending")
    url = reverse("staff:reader_action", args=[reader.pk, "resend"])
    with django_capture_on_commit_callbacks() as callbacks:
        page = admin.post(url, follow=True).content.decode()
    assert "The confirmation mail is on its way." in page and len(callbacks) == 1
    assert tasks.confirmation_mail(reader.pk) is True
    [message] = outbox_messages(outbox)
    assert message["To"] == "pending@example.org" and "/confirm/" in message.get_body(("plain",)).get_content()
    with django_capture_on_commit_callbacks() as callbacks:
        again = admin.post(url, follow=True).content.decode()
    assert "went out a short while ago" in again and callbacks == []


def test_suppress_then_erase(admin, news):
    reader = _reader("rosa@example.org", name="Rosa", mailing_list=news)
    suppress = reverse("staff:reader_action", args=[reader.pk, "suppress"])
    assert "will never be mailed again" in admin.post(suppress, follow=True).content.decode()
    row = Suppression.objects.get()
    assert (row.reason, row.email, row.note) == (
        "manual",
        "rosa@example.org",
        "suppressed by ada on the subscribers screen",
    )
    assert "Already suppressed (added by an admin)." in admin.post(suppress, follow=True).content.decode()
    erased = admin.post(reverse("staff:reader_action", args=[reader.pk, "erase"]), follow=True)
    assert erased.redirect_chain[-1][0] == reverse("staff:readers")
    assert "Erased: only a keyed hash" in erased.content.decode()
    assert not Subscriber.objects.exists() and not Subscription.objects.exists()
    assert list(Suppression.objects.values_list("email_hash", "email")) == [(email_hash("rosa@example.org"), "")]

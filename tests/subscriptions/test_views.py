import re
import time
from types import SimpleNamespace

import pytest
import redis
from django.test import Client
from django.utils import timezone

from issues.models import Delivery, Issue
from subscriptions import confirmation, suppressions, tasks, unsubscribing
from subscriptions.addresses import email_hash
from subscriptions.links import preferences_url, unsubscribe_url
from subscriptions.models import Subscriber, Subscription, Suppression
from subscriptions.suppressions import suppression_add
from tests.subscriptions.conftest import html_of, link_in, outbox_messages, text_of

CSRF_VALUE = re.compile(rb'name="csrfmiddlewaretoken" value="[^"]*"')


def subscribe(client, django_capture_on_commit_callbacks, **data):
    """POST the subscribe form; return the response and the on-commit callbacks it queued."""
    form = {"email": "reader@example.org", "name": "", "lists": ["news"], **data}
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post("/subscribe/", form)
    return response, callbacks


def path_of(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


# --- The list page and the form ------------------------------------------------------


def test_list_page_shows_an_accessible_subscribe_form(client, news):
    response = client.get("/lists/news/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "<h1>News</h1>" in page
    assert '<label for="id_email">Email address</label>' in page
    assert 'action="/subscribe/"' in page
    assert "Embed this form" not in page


def test_private_or_unknown_list_has_no_page(client, private):
    assert client.get("/lists/cadre/").status_code == 404
    assert client.get("/lists/nope/").status_code == 404


def test_home_links_each_public_list_to_its_page(client, news, private):
    page = client.get("/").content.decode()
    assert 'href="/lists/news/"' in page
    assert "/lists/cadre/" not in page


def test_staff_see_the_embeddable_snippet_and_it_subscribes_without_csrf(
    client, admin_user, news, django_capture_on_commit_callbacks
):
    client.force_login(admin_user)
    page = client.get("/lists/news/").content.decode()
    assert "Embed this form on another site" in page
    snippet = re.search(r"<pre><code>(.*?)</code></pre>", page, re.S).group(1)
    assert "action=&quot;http://127.0.0.1:8000/subscribe/&quot;" in snippet  # SITE_URL, for other sites
    assert "script" not in snippet.lower()
    names = set(re.findall(r"name=&quot;([a-z]+)&quot;", snippet))
    assert names == {"email", "name", "lists", "website"}
    # Posted from another site: no session, no CSRF token.
    stranger = Client(enforce_csrf_checks=True)
    response, callbacks = subscribe(stranger, django_capture_on_commit_callbacks, email="far@example.org", website="")
    assert response.status_code == 302
    assert Subscription.objects.get(subscriber__email="far@example.org").status == "pending"
    assert len(callbacks) == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"email": "not-an-address"}, "That is not a valid email address"),
        ({"email": ""}, "Enter an email address"),
        ({"email": "a" * 250 + "@example.org"}, "at most 254 characters"),
        ({"email": "x@example.org\r\nBcc: victim@example.org"}, "cannot contain line breaks"),
        ({"name": "Eve\r\nBcc: victim@example.org"}, "A name cannot contain line breaks"),
        ({"name": "n" * 201}, "at most 200 characters"),
        ({"lists": ["nope"]}, "There is no public list called \u201cnope\u201d"),
        ({"lists": ["cadre"]}, "There is no public list called \u201ccadre\u201d"),
        ({"lists": []}, "Choose at least one list"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message_and_changes_nothing(
    client, news, private, data, message, django_capture_on_commit_callbacks
):
    response, callbacks = subscribe(client, django_capture_on_commit_callbacks, **data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Subscriber.objects.exists()
    assert callbacks == []


def test_honeypot_gets_the_usual_answer_and_subscribes_nobody(client, news, django_capture_on_commit_callbacks):
    response, callbacks = subscribe(client, django_capture_on_commit_callbacks, website="http://spam.example")
    assert response.status_code == 302
    assert response["Location"] == "/subscribe/check-inbox/"
    assert not Subscriber.objects.exists()
    assert callbacks == []


# --- Double opt-in ---------------------------------------------------------------


def test_double_opt_in_from_form_to_confirmed(client, news, outbox, django_capture_on_commit_callbacks):
    response, callbacks = subscribe(client, django_capture_on_commit_callbacks, name="Rosa")
    assert response.status_code == 302
    assert client.get(response["Location"]).content.decode().count("Check your inbox") >= 1
    subscription = Subscription.objects.get(subscriber__email="reader@example.org")
    assert subscription.status == "pending"
    assert subscription.consent_source == "form"
    assert subscription.consent_detail == "web form, client 127.0.0.1"
    assert subscription.subscriber.name == "Rosa"
    assert len(callbacks) == 1

    assert tasks.confirmation_mail(subscription.subscriber_id) is True
    [message] = outbox_messages(outbox)
    assert message["To"] == "reader@example.org"  # a name typed on the public form is never repeated
    assert message["From"] == "The News Desk <news@example.org>"
    assert message["Reply-To"] == "desk@example.org"
    assert message["Subject"] == "Confirm your subscription to News"
    link = link_in(text_of(message), "http://127.0.0.1:8000/confirm/")
    assert link in html_of(message)
    assert "works for 7 days" in text_of(message)

    # A GET (a mail scanner, or the reader) shows a button and changes nothing.
    page = client.get(path_of(link))
    assert page.status_code == 200
    assert "Yes, subscribe me" in page.content.decode()
    subscription.refresh_from_db()
    assert subscription.status == "pending"

    confirmed = Client().post(path_of(link))
    assert confirmed.status_code == 200
    assert "You are subscribed" in confirmed.content.decode()
    subscription.refresh_from_db()
    assert subscription.status == "active"
    assert subscription.confirmed_at is not None

    again = Client().post(path_of(link))
    assert again.status_code == 200
    assert "Already confirmed" in again.content.decode()
    assert Client().get(path_of(link)).content.decode().count("Already confirmed") == 1


def test_confirmation_link_expires(client, news, outbox, monkeypatch, django_capture_on_commit_callbacks):
    subscribe(client, django_capture_on_commit_callbacks)
    tasks.confirmation_mail(Subscriber.objects.get().pk)
    link = link_in(text_of(outbox_messages(outbox)[0]), "http://127.0.0.1:8000/confirm/")
    later = time.time() + 8 * 86400
    monkeypatch.setattr(confirmation, "time", SimpleNamespace(time=lambda: later))
    response = client.post(path_of(link))
    assert response.status_code == 410
    assert "This link has expired" in response.content.decode()
    assert Subscription.objects.get().status == "pending"


def test_confirmation_covers_only_what_was_asked_before_the_mail(
    client, news, notes, outbox, django_capture_on_commit_callbacks
):
    other = news.__class__.objects.create(name="Other", slug="other", from_name="O", from_email="o@example.org")
    subscribe(client, django_capture_on_commit_callbacks)
    reader = Subscriber.objects.get()
    tasks.confirmation_mail(reader.pk)
    link = link_in(text_of(outbox_messages(outbox)[0]), "http://127.0.0.1:8000/confirm/")
    time.sleep(1.1)  # the token's clock has one-second steps
    subscribe(client, django_capture_on_commit_callbacks, lists=["other"])
    client.post(path_of(link))
    assert Subscription.objects.get(mailing_list=news).status == "active"
    assert Subscription.objects.get(mailing_list=other).status == "pending"


def test_list_without_double_opt_in_is_active_at_once_with_a_welcome(
    client, notes, outbox, django_capture_on_commit_callbacks
):
    response, callbacks = subscribe(client, django_capture_on_commit_callbacks, lists=["notes"])
    assert response["Location"] == "/subscribe/check-inbox/"
    subscription = Subscription.objects.get()
    assert subscription.status == "active"
    assert subscription.confirmed_at is not None
    assert subscription.consent_source == "form"
    assert len(callbacks) == 1  # the welcome, no confirmation
    callbacks[0]()  # queues to Redis; run the task here instead of waiting on a worker
    tasks.welcome_mail(subscription.subscriber_id, notes.pk)
    [message] = outbox_messages(outbox)
    assert message["Subject"] == "Welcome to Notes"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "/u/" in message["List-Unsubscribe"]
    assert "/p/" in text_of(message)


def test_unsubscribed_reader_can_come_back_through_confirmation(
    client, news, active_reader, outbox, django_capture_on_commit_callbacks
):
    unsubscribing.subscription_unsubscribe(subscriber_id=active_reader.pk, list_id=news.pk, source="link")
    response, callbacks = subscribe(client, django_capture_on_commit_callbacks, email="active@example.org")
    assert response.status_code == 302
    subscription = Subscription.objects.get()
    assert subscription.status == "pending"
    assert subscription.unsubscribed_at is None
    assert subscription.unsubscribe_source == ""
    assert subscription.confirmed_at is None
    assert len(callbacks) == 1
    tasks.confirmation_mail(active_reader.pk)
    link = link_in(text_of(outbox_messages(outbox)[0]), "http://127.0.0.1:8000/confirm/")
    client.post(path_of(link))
    assert Subscription.objects.get().status == "active"


# --- No enumeration, rate limits ---------------------------------------------------------


def _answer(client, email_address):
    response = client.post("/subscribe/", {"email": email_address, "lists": ["news"]})
    followed = client.get(response["Location"])
    return (
        response.status_code,
        response["Location"],
        response.content,
        sorted(k for k in response.headers if k != "Set-Cookie"),
        followed.status_code,
        CSRF_VALUE.sub(b"", followed.content),
    )


def test_new_pending_active_suppressed_and_limited_addresses_get_the_same_answer(
    client, news, active_reader, django_capture_on_commit_callbacks, settings
):
    suppression_add(email="gone@example.org", reason="hard_bounce")
    with django_capture_on_commit_callbacks() as callbacks:
        new = _answer(client, "new@example.org")
        pending = _answer(client, "new@example.org")  # now pending, and inside its mail window
        active = _answer(client, "active@example.org")
        suppressed = _answer(client, "gone@example.org")
    assert new == pending == active == suppressed
    assert len(callbacks) == 1  # only the new address got a mail
    settings.SUBSCRIBE_POSTS_PER_MINUTE = 4
    limited = _answer(client, "other@example.org")  # the fifth post this minute
    assert limited == new
    assert not Subscriber.objects.filter(email="other@example.org").exists()
    assert not Subscriber.objects.filter(email="gone@example.org").exists()


def test_one_confirmation_mail_per_address_per_interval_held_in_redis(
    client, news, settings, django_capture_on_commit_callbacks
):
    settings.CONFIRMATION_MAIL_INTERVAL = 2
    _, first = subscribe(client, django_capture_on_commit_callbacks)
    _, second = subscribe(client, django_capture_on_commit_callbacks, email="Reader@example.org")
    assert (len(first), len(second)) == (1, 0)
    keys = list(redis.Redis.from_url(settings.REDIS_URL).scan_iter("*confirm-mail*"))
    assert len(keys) == 1
    assert b"reader@example.org" not in keys[0]  # keyed by the hash, not the address
    time.sleep(2.1)
    _, third = subscribe(client, django_capture_on_commit_callbacks)
    assert len(third) == 1


def test_subscribe_posts_per_client_are_capped_in_redis(client, news, settings, django_capture_on_commit_callbacks):
    settings.SUBSCRIBE_POSTS_PER_MINUTE = 3
    for n in range(5):
        subscribe(client, django_capture_on_commit_callbacks, email=f"r{n}@example.org")
    assert sorted(Subscriber.objects.values_list("email", flat=True)) == [
        "r0@example.org",
        "r1@example.org",
        "r2@example.org",
    ]
    # Another client is not affected.
    other = Client(REMOTE_ADDR="192.0.2.9")
    subscribe(other, django_capture_on_commit_callbacks, email="r9@example.org")
    assert Subscriber.objects.filter(email="r9@example.org").exists()


def test_erased_address_gets_no_mail_when_it_subscribes_again(client, news, active_reader, outbox):
    token = preferences_url(subscriber_id=active_reader.pk).split("/p/")[1].rstrip("/")
    client.post(f"/p/{token}/erase/")
    response = client.post("/subscribe/", {"email": "active@example.org", "lists": ["news"]})
    assert response["Location"] == "/subscribe/check-inbox/"
    assert not Subscriber.objects.exists()
    assert outbox_messages(outbox) == []
    # The page says plainly why no mail may come and how to come back, as it
    # does to everyone: it must not tell who asked to be forgotten.
    page = client.get(response["Location"]).content.decode()
    assert "Did you once ask us to forget this address?" in page
    assert 'href="mailto:desk@example.org"' in page
    fresh = client.post("/subscribe/", {"email": "someone-new@example.org", "lists": ["news"]})
    assert client.get(fresh["Location"]).content.decode() == page


# --- Unsubscribe ---------------------------------------------------------------------


def test_unsubscribe_get_shows_a_button_and_changes_nothing(client, news, active_reader):
    url = unsubscribe_url(subscriber_id=active_reader.pk, list_id=news.pk)
    response = client.get(path_of(url))
    assert response.status_code == 200
    page = response.content.decode()
    assert '<button type="submit">Unsubscribe</button>' in page
    assert "active@example.org" in page
    assert Subscription.objects.get().status == "active"


def test_unsubscribe_button_post_records_link_and_issue_and_is_harmless_twice(news, active_reader):
    issue = Issue.objects.create(title="Issue one", body="text")
    url = path_of(unsubscribe_url(subscriber_id=active_reader.pk, list_id=news.pk, issue_id=issue.pk))
    browser = Client(enforce_csrf_checks=True)
    response = browser.post(url)
    assert response.status_code == 200
    assert "You are unsubscribed" in response.content.decode()
    subscription = Subscription.objects.get()
    assert (subscription.status, subscription.unsubscribe_source) == ("unsubscribed", "link")
    assert subscription.unsubscribe_issue == issue
    again = browser.post(url)
    assert again.status_code == 200
    assert "Already unsubscribed" in again.content.decode()
    assert Subscription.objects.get().unsubscribed_at == subscription.unsubscribed_at


def test_unsubscribed_page_offers_to_subscribe_again_with_a_fresh_consent_record(news, active_reader):
    url = path_of(unsubscribe_url(subscriber_id=active_reader.pk, list_id=news.pk))
    browser = Client(enforce_csrf_checks=True)  # like a mail app's browser: no CSRF cookie
    page = browser.post(url).content.decode()
    again_url = url.rstrip("/") + "/again/"
    assert f'<form method="post" action="{again_url}"' in page
    assert "Subscribe me again to News" in page
    # A GET (a mail scanner) changes nothing.
    assert browser.get(again_url).status_code == 405
    assert Subscription.objects.get().status == "unsubscribed"
    done = browser.post(again_url, REMOTE_ADDR="192.0.2.9")
    assert done.status_code == 200 and "You are subscribed again" in done.content.decode()
    subscription = Subscription.objects.get()
    assert (subscription.status, subscription.unsubscribe_source, subscription.unsubscribed_at) == ("active", "", None)
    assert subscription.consent_detail == "re-subscribed from the unsubscribe link's page, client 192.0.2.9"
    assert subscription.confirmed_at is not None
    assert "Already subscribed" in browser.post(again_url).content.decode()
    assert browser.post("/u/forged-token/again/").status_code == 404


def test_a_suppressed_reader_cannot_come_back_through_the_unsubscribed_page(news, active_reader):
    url = path_of(unsubscribe_url(subscriber_id=active_reader.pk, list_id=news.pk))
    Client().post(url)
    Suppression.objects.create(email_hash=email_hash("active@example.org"), reason="complaint")
    page = Client().post(url.rstrip("/") + "/again/").content.decode()
    assert "This address cannot be mailed" in page and "mailto:desk@example.org" in page
    assert Subscription.objects.get().status == "unsubscribed"


def test_unsubscribe_token_naming_a_deleted_issue_still_unsubscribes(client, news, active_reader):
    issue = Issue.objects.create(title="Gone", body="text")
    url = path_of(unsubscribe_url(subscriber_id=active_reader.pk, list_id=news.pk, issue_id=issue.pk))
    issue.delete()
    assert client.post(url).status_code == 200
    subscription = Subscription.objects.get()
    assert subscription.status == "unsubscribed"
    assert subscription.unsubscribe_issue is None


@pytest.mark.parametrize(
    "path",
    [
        "/u/{u}x/",
        "/u/junk/",
        "/p/{p}x/",
        "/p/{p}x/data.json",
        "/p/{p}x/erase/",
        "/confirm/junk/",
        "/confirm-address/junk/",
    ],
)
@pytest.mark.parametrize("method", ["get", "post"])
def test_tampered_tokens_get_a_friendly_404_and_change_nothing(client, news, active_reader, path, method):
    u = unsubscribe_url(subscriber_id=active_reader.pk, list_id=news.pk).split("/u/")[1].rstrip("/")
    p = preferences_url(subscriber_id=active_reader.pk).split("/p/")[1].rstrip("/")
    response = getattr(client, method)(
        path.format(u=u, p=p), {"List-Unsubscribe": "One-Click"} if method == "post" else {}
    )
    if method == "post" and path.endswith("data.json"):
        assert response.status_code == 405
    else:
        assert response.status_code == 404
        assert "This link does not work" in response.content.decode()
    assert Subscriber.objects.get().email == "active@example.org"
    assert Subscription.objects.get().status == "active"


def test_token_of_one_reader_cannot_be_rewritten_for_another(client, news, active_reader):
    other = Subscriber.objects.create(email="other@example.org")
    Subscription.objects.create(
        subscriber=other, mailing_list=news, status="active", consent_source="form", confirmed_at=timezone.now()
    )
    token = unsubscribe_url(subscriber_id=active_reader.pk, list_id=news.pk).split("/u/")[1].rstrip("/")
    value, signature = token.split(":", 1)
    forged = f"{int(other.pk):x}{value[1:]}:{signature}"
    assert client.post(f"/u/{forged}/").status_code == 404
    assert Subscription.objects.filter(status="active").count() == 2


# --- Preferences ---------------------------------------------------------------------


@pytest.fixture
def prefs(active_reader):
    return path_of(preferences_url(subscriber_id=active_reader.pk))


def test_preferences_show_lists_name_and_the_way_out(client, prefs, news, notes, private):
    page = client.get(prefs).content.decode()
    assert "active@example.org" in page
    assert 'value="Ada"' in page
    assert "News" in page and "Notes" in page
    assert "Cadre" not in page  # private and not on it
    assert "data.json" in page and "erase/" in page


def test_preferences_change_name_and_lists(
    client, prefs, news, notes, active_reader, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(prefs, {"name": "Ada L.", "lists": [str(notes.pk)]})
    assert response.status_code == 302
    assert "Your preferences are saved" in client.get(response["Location"]).content.decode()
    active_reader.refresh_from_db()
    assert active_reader.name == "Ada L."
    on_news = Subscription.objects.get(mailing_list=news)
    assert (on_news.status, on_news.unsubscribe_source) == ("unsubscribed", "preferences")
    on_notes = Subscription.objects.get(mailing_list=notes)
    assert on_notes.status == "active"
    assert on_notes.consent_detail == "preference centre"
    assert len(callbacks) == 1  # Notes sends a welcome


def test_preferences_refuse_a_private_list_and_a_bad_name(client, prefs, private):
    response = client.post(prefs, {"name": "A\nB", "lists": [str(private.pk)]})
    assert response.status_code == 400
    page = response.content.decode()
    assert "A name cannot contain line breaks" in page
    assert "Select a valid choice" in page
    assert not Subscription.objects.filter(mailing_list=private).exists()


def test_download_my_data_as_json(client, prefs, news, active_reader):
    issue = Issue.objects.create(title="Issue one", body="text")
    Delivery.objects.create(issue=issue, subscriber=active_reader, email=active_reader.email, mailing_list=news)
    response = client.get(prefs + "data.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "attachment" in response["Content-Disposition"]
    data = response.json()
    assert data["email"] == "active@example.org"
    assert data["name"] == "Ada"
    assert data["subscriptions"][0]["list_slug"] == "news"
    assert data["subscriptions"][0]["status"] == "active"
    assert data["deliveries"][0]["issue"] == "Issue one"


def test_erase_asks_first_then_deletes_everything_but_a_keyed_hash(client, prefs, news, active_reader):
    issue = Issue.objects.create(title="Issue one", body="text")
    delivery = Delivery.objects.create(issue=issue, subscriber=active_reader, email=active_reader.email)
    page = client.get(prefs + "erase/")
    assert page.status_code == 200
    assert "Erase everything about me" in page.content.decode()
    assert Subscriber.objects.exists()

    response = client.post(prefs + "erase/")
    assert response.status_code == 200
    assert "You have been erased" in response.content.decode()
    assert not Subscriber.objects.exists()
    assert not Subscription.objects.exists()
    delivery.refresh_from_db()
    assert (delivery.subscriber_id, delivery.email) == (None, "")
    suppression = Suppression.objects.get()
    assert (suppression.reason, suppression.email) == ("erased", "")
    assert suppressions.suppression_exists(email="ACTIVE@example.org")
    # The preference link now leads nowhere.
    assert client.get(prefs).status_code == 404


def test_erase_blanks_an_address_that_was_already_suppressed(client, prefs, active_reader):
    suppression_add(email=active_reader.email, reason="hard_bounce")
    client.post(prefs + "erase/")
    suppression = Suppression.objects.get()
    assert (suppression.reason, suppression.email) == ("hard_bounce", "")


# --- Change of address -------------------------------------------------------------


def _request_address(client, prefs, new_email, capture):
    with capture() as callbacks:
        response = client.post(prefs + "address/", {"new_email": new_email})
    return response, callbacks


def test_change_of_address_confirms_the_new_one_first(
    client, prefs, news, active_reader, outbox, django_capture_on_commit_callbacks
):
    response, callbacks = _request_address(client, prefs, "new@example.org", django_capture_on_commit_callbacks)
    assert response.status_code == 200
    assert "Check your inbox" in response.content.decode()
    assert len(callbacks) == 1
    active_reader.refresh_from_db()
    assert active_reader.email == "active@example.org"  # the old one keeps working

    tasks.address_change_mail(active_reader.pk, "new@example.org")
    [message] = outbox_messages(outbox)
    assert message["To"] == "Ada <new@example.org>"
    assert message["Subject"] == "Confirm your new address"
    link = path_of(link_in(text_of(message), "http://127.0.0.1:8000/confirm-address/"))

    assert "Yes, use this address" in client.get(link).content.decode()
    active_reader.refresh_from_db()
    assert active_reader.email == "active@example.org"

    done = Client().post(link)
    assert done.status_code == 200
    assert "Address changed" in done.content.decode()
    active_reader.refresh_from_db()
    assert active_reader.email == "new@example.org"
    assert Subscription.objects.get().status == "active"
    assert "Already done" in Client().post(link).content.decode()


def test_change_to_someone_elses_address_reveals_nothing_then_is_refused(
    client, prefs, news, active_reader, outbox, django_capture_on_commit_callbacks
):
    Subscriber.objects.create(email="taken@example.org")
    free, _ = _request_address(client, prefs, "free@example.org", django_capture_on_commit_callbacks)
    taken, callbacks = _request_address(client, prefs, "taken@example.org", django_capture_on_commit_callbacks)
    suppression_add(email="banned@example.org", reason="complaint")
    banned, none = _request_address(client, prefs, "banned@example.org", django_capture_on_commit_callbacks)
    normalise = lambda r: CSRF_VALUE.sub(b"", r.content).replace(b"free@", b"X@").replace(b"taken@", b"X@")  # noqa: E731
    assert normalise(free) == normalise(taken) == normalise(banned).replace(b"banned@", b"X@")
    assert len(callbacks) == 1 and none == []  # the suppressed address gets no mail

    tasks.address_change_mail(active_reader.pk, "taken@example.org")
    link = path_of(link_in(text_of(outbox_messages(outbox)[0]), "http://127.0.0.1:8000/confirm-address/"))
    response = Client().post(link)
    assert response.status_code == 409
    assert "already has its own subscriptions" in response.content.decode()
    active_reader.refresh_from_db()
    assert active_reader.email == "active@example.org"


def test_change_of_address_refuses_a_malformed_address(client, prefs, active_reader):
    response = client.post(prefs + "address/", {"new_email": "new@example.org\r\nBcc: x@example.org"})
    assert response.status_code == 400
    assert "cannot contain line breaks" in response.content.decode()

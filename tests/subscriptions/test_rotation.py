"""Rotating SECRET_KEY: old links keep working and erased readers stay erased, while the old key is a fallback."""

from __future__ import annotations

import secrets

import pytest
from django.test import Client

from subscriptions import confirmation, erasure, suppressions
from subscriptions.addresses import email_hash
from subscriptions.links import preferences_url, unsubscribe_url
from subscriptions.models import Subscriber, Subscription, Suppression
from tests.subscriptions.conftest import link_in, outbox_messages, text_of
from tests.subscriptions.test_imports import run, write_csv

OLD_KEY = secrets.token_urlsafe(64)
NEW_KEY = secrets.token_urlsafe(64)


@pytest.fixture
def old_key(settings):
    settings.SECRET_KEY = OLD_KEY
    settings.SECRET_KEY_FALLBACKS = []
    return settings


def rotate(settings, *, keep_old: bool = True) -> None:
    settings.SECRET_KEY = NEW_KEY
    settings.SECRET_KEY_FALLBACKS = [OLD_KEY] if keep_old else []


def path_of(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def test_preference_link_signed_with_the_old_key_works_after_rotation(old_key, active_reader):
    link = path_of(preferences_url(subscriber_id=active_reader.pk))
    rotate(old_key)
    page = Client().get(link)
    assert page.status_code == 200
    assert "active@example.org" in page.content.decode()
    # New links are made with the new key, and differ.
    assert path_of(preferences_url(subscriber_id=active_reader.pk)) != link


def test_old_links_stop_working_once_the_old_key_is_dropped(old_key, active_reader, news):
    prefs = path_of(preferences_url(subscriber_id=active_reader.pk))
    unsubscribe = path_of(unsubscribe_url(subscriber_id=active_reader.pk, list_id=news.pk))
    rotate(old_key, keep_old=False)
    assert Client().get(prefs).status_code == 404
    assert Client().post(unsubscribe, {"List-Unsubscribe": "One-Click"}).status_code == 404
    assert Subscription.objects.get(subscriber=active_reader).status == "active"


def test_one_click_unsubscribe_signed_with_the_old_key_works_after_rotation(old_key, active_reader, news):
    link = path_of(unsubscribe_url(subscriber_id=active_reader.pk, list_id=news.pk))
    rotate(old_key)
    response = Client(enforce_csrf_checks=True).post(link, {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert Subscription.objects.get(subscriber=active_reader).status == "unsubscribed"


def test_confirmation_link_mailed_before_rotation_still_confirms(
    old_key, client, news, outbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks():
        client.post("/subscribe/", {"email": "new@example.org", "name": "", "lists": ["news"]})
    subscriber = Subscriber.objects.get(email="new@example.org")
    assert confirmation.confirmation_mail_send(subscriber_id=subscriber.pk)
    link = path_of(link_in(text_of(outbox_messages(outbox)[0]), "http://127.0.0.1:8000/confirm/"))
    rotate(old_key)
    response = Client().post(link)
    assert response.status_code == 200
    assert Subscription.objects.get(subscriber=subscriber).status == "active"


def test_erased_address_is_still_refused_on_import_after_rotation_and_is_rekeyed(
    old_key, active_reader, news, tmp_path
):
    erasure.subscriber_erase(subscriber_id=active_reader.pk)
    old_hash = Suppression.objects.get().email_hash
    rotate(old_key)

    job = run(write_csv(tmp_path, [["email"], ["Active@Example.org"], ["fresh@example.org"]]), news)

    assert (job.suppressed_count, job.imported_count) == (1, 1)
    assert list(Subscriber.objects.values_list("email", flat=True)) == ["fresh@example.org"]
    # Found under the old key, the row now carries the current key's hash...
    row = Suppression.objects.get()
    assert row.email_hash == email_hash("active@example.org") != old_hash
    assert (row.email, row.reason) == ("", "erased")
    # ...so it keeps matching once the old key is dropped.
    rotate(old_key, keep_old=False)
    again = run(write_csv(tmp_path, [["email"], ["active@example.org"]], name="again.csv"), news)
    assert (again.suppressed_count, again.imported_count) == (1, 0)


def test_erased_address_cannot_subscribe_again_after_rotation(
    old_key, active_reader, client, news, django_capture_on_commit_callbacks
):
    erasure.subscriber_erase(subscriber_id=active_reader.pk)
    rotate(old_key)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post("/subscribe/", {"email": "active@example.org", "name": "", "lists": ["news"]})
    assert response.status_code == 302
    assert not Subscriber.objects.exists()
    assert callbacks == []
    assert Suppression.objects.get().email_hash == email_hash("active@example.org")


def test_without_fallback_an_erased_address_hashed_under_the_old_key_is_not_found(old_key, active_reader):
    # What the fallback is for: the hash alone cannot be re-keyed without it.
    erasure.subscriber_erase(subscriber_id=active_reader.pk)
    rotate(old_key, keep_old=False)
    assert not suppressions.suppression_exists(email="active@example.org")

"""Subscribers through the API: consent, double opt-in, search, pages, changes, erasure, bulk upsert."""

from __future__ import annotations

import pytest
from django.utils import timezone

from issues.models import Delivery, Issue
from subscriptions.addresses import email_hash
from subscriptions.models import Subscriber, Subscription, Suppression
from tests.subscriptions.conftest import link_in, outbox_messages, text_of


def _create(api, captured, **body):
    with captured(execute=True):
        return api.post("/subscribers", {"email": "rosa@example.org", "lists": ["news"], **body})


def test_create_records_api_consent_and_sends_one_confirmation(
    admin_api, news, outbox, django_capture_on_commit_callbacks, eager_celery
):
    response = _create(admin_api, django_capture_on_commit_callbacks, name="Rosa", note="paper form, 3 May")
    assert response.status_code == 201
    body = response.json()
    assert body["email"] == "rosa@example.org" and body["name"] == "Rosa"
    [subscription] = body["subscriptions"]
    assert subscription["status"] == "pending" and subscription["consent_source"] == "api"
    assert "paper form, 3 May" in subscription["consent_detail"]
    [mail] = outbox_messages(outbox)
    assert mail["To"] == "rosa@example.org"
    assert link_in(text_of(mail), "http://127.0.0.1:8000/confirm/")


def test_consent_given_makes_it_active_without_mail(admin_api, news, outbox, django_capture_on_commit_callbacks):
    response = _create(admin_api, django_capture_on_commit_callbacks, consent_given=True)
    assert response.json()["subscriptions"][0]["status"] == "active"
    assert Subscription.objects.get().confirmed_at is not None
    assert outbox_messages(outbox) == []


def test_an_existing_address_is_409_with_its_id(admin_api, news, django_capture_on_commit_callbacks):
    first = _create(admin_api, django_capture_on_commit_callbacks).json()
    again = _create(admin_api, django_capture_on_commit_callbacks, email="ROSA@example.org")
    assert again.status_code == 409
    assert str(first["id"]) in again.json()["detail"]
    assert Subscriber.objects.count() == 1


def test_bad_input_names_the_field_and_changes_nothing(admin_api, news):
    cases = [
        ({"email": "not an address", "lists": ["news"]}, "email"),
        ({"email": "a@example.org\r\nBcc: x@example.org", "lists": ["news"]}, "email"),
        ({"email": "a@example.org", "lists": ["nope"]}, "lists"),
        ({"email": "a@example.org", "lists": []}, "lists"),
        ({"email": "a@example.org", "lists": ["news"], "name": "x" * 201}, "name"),
        ({"email": "a@example.org", "lists": ["news"], "name": "Eve\nBcc: x"}, "name"),
        ({"email": "ä" * 400 + "@example.org", "lists": ["news"]}, "email"),
        ({"lists": ["news"]}, "email"),
        ({"email": "a\x00@example.org", "lists": ["news"]}, "email"),
    ]
    for body, field in cases:
        response = admin_api.post("/subscribers", body)
        assert response.status_code == 422, body
        assert response["Content-Type"] == "application/problem+json"
        assert field in [e["field"] for e in response.json()["errors"]], (body, response.json())
    assert not Subscriber.objects.exists()


def test_malformed_json_is_a_problem_not_a_crash(admin_api, news):
    response = admin_api.call("post", "/subscribers", raw=b"{not json")
    assert response.status_code in (400, 422)
    assert response["Content-Type"] == "application/problem+json"


def test_a_suppressed_address_cannot_be_added(admin_api, news):
    Suppression.objects.create(email_hash=email_hash("gone@example.org"), email="", reason="erased")
    response = admin_api.post("/subscribers", {"email": "Gone@Example.org", "lists": ["news"]})
    assert response.status_code == 422
    assert not Subscriber.objects.exists()


def test_consent_given_needs_the_permission(token_for, cast, news):
    from django.contrib.auth.models import Permission

    admin = cast["admin"]
    for group in admin.groups.all():
        group.permissions.remove(Permission.objects.get(codename="add_subscription"))
    response = token_for("admin").post("/subscribers", {"email": "a@example.org", "lists": ["news"]})
    assert response.status_code == 403  # creating needs it as well: a subscription is what is created


def _readers(news, count: int) -> list[Subscriber]:
    readers = []
    for n in range(count):
        reader = Subscriber.objects.create(email=f"reader{n:02d}@example.org", name=f"Reader Nº{n}")
        Subscription.objects.create(
            subscriber=reader,
            mailing_list=news,
            status="active" if n % 2 else "unsubscribed",
            consent_source="import",
            confirmed_at=timezone.now(),
            unsubscribed_at=None if n % 2 else timezone.now(),
            unsubscribe_source="" if n % 2 else "link",
        )
        readers.append(reader)
    return readers


def test_cursor_pages_cover_everyone_once(admin_api, news):
    readers = _readers(news, 25)
    seen, cursor, pages = [], None, 0
    while True:
        response = admin_api.get("/subscribers?limit=10" + (f"&cursor={cursor}" if cursor else ""))
        assert response.status_code == 200
        page = response.json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [r.pk for r in readers] and pages == 3


def test_filters_and_substring_search(admin_api, news, notes):
    _readers(news, 6)
    active = admin_api.get("/subscribers?list=news&status=active").json()["items"]
    assert [i["email"] for i in active] == ["reader01@example.org", "reader03@example.org", "reader05@example.org"]
    assert [i["email"] for i in admin_api.get("/subscribers?q=ADER04").json()["items"]] == ["reader04@example.org"]
    assert len(admin_api.get("/subscribers?q=nº").json()["items"]) == 6
    assert admin_api.get("/subscribers?list=notes").json()["items"] == []
    found = admin_api.get("/subscribers/by-email?email=Reader02@EXAMPLE.org")
    assert found.status_code == 200 and found.json()["email"] == "reader02@example.org"
    assert admin_api.get("/subscribers/by-email?email=nobody@example.org").status_code == 404


def test_a_tampered_cursor_is_400_naming_it(admin_api, news):
    for cursor in ("garbage!", "YWZ0ZXI6LTE", "%00", "x" * 99):
        response = admin_api.get(f"/subscribers?cursor={cursor}")
        assert response.status_code in (400, 422), cursor
        assert response.json()["errors"][0]["field"] == "cursor"


def test_update_name_and_exact_lists(admin_api, news, notes, django_capture_on_commit_callbacks):
    reader = _create(admin_api, django_capture_on_commit_callbacks, consent_given=True).json()
    response = admin_api.patch(f"/subscribers/{reader['id']}", {"name": "Rosa L.", "lists": ["notes"]})
    assert response.status_code == 200
    by_list = {s["list_slug"]: s for s in response.json()["subscriptions"]}
    assert response.json()["name"] == "Rosa L."
    assert by_list["news"]["status"] == "unsubscribed" and by_list["news"]["unsubscribe_source"] == "api"
    assert by_list["notes"]["status"] == "active"  # notes has no double opt-in


def test_unsubscribe_from_one_list_then_all(admin_api, news, notes, django_capture_on_commit_callbacks):
    reader = _create(admin_api, django_capture_on_commit_callbacks, lists=["news", "notes"], consent_given=True)
    reader_id = reader.json()["id"]
    assert admin_api.post(f"/subscribers/{reader_id}/unsubscribe", {"lists": ["news"]}).json() == {"unsubscribed": 1}
    assert admin_api.post(f"/subscribers/{reader_id}/unsubscribe", {}).json() == {"unsubscribed": 1}
    assert admin_api.post(f"/subscribers/{reader_id}/unsubscribe", {}).json() == {"unsubscribed": 0}
    assert set(Subscription.objects.values_list("status", flat=True)) == {"unsubscribed"}


def test_erase_keeps_only_a_hash_and_the_ledger_figures(admin_api, news, django_capture_on_commit_callbacks):
    reader_id = _create(admin_api, django_capture_on_commit_callbacks, consent_given=True).json()["id"]
    issue = Issue.objects.create(title="T", body="B")
    Delivery.objects.create(issue=issue, subscriber_id=reader_id, email="rosa@example.org", status="pending")
    response = admin_api.delete(f"/subscribers/{reader_id}")
    assert response.status_code == 204
    assert not Subscriber.objects.exists()
    assert Delivery.objects.get().email == ""
    assert Suppression.objects.get().email_hash == email_hash("rosa@example.org")
    assert admin_api.delete(f"/subscribers/{reader_id}").status_code == 404
    again = admin_api.post("/subscribers", {"email": "rosa@example.org", "lists": ["news"]})
    assert again.status_code == 422


def test_bulk_upsert_reports_each_item_and_skips_bad_ones(admin_api, news, notes, django_capture_on_commit_callbacks):
    _create(admin_api, django_capture_on_commit_callbacks, email="old@example.org", name="Old", consent_given=True)
    Suppression.objects.create(email_hash=email_hash("gone@example.org"), email="gone@example.org", reason="manual")
    items = [
        {"email": "new@example.org", "name": "New", "lists": ["news"]},
        {"email": "not-an-address", "lists": ["news"]},
        {"email": "old@example.org", "name": "Old", "lists": ["news"]},
        {"email": "old@example.org", "name": "Renamed", "lists": ["notes"]},
        {"email": "x@example.org", "lists": ["missing"]},
        {"email": "gone@example.org", "lists": ["news"]},
        {"email": "evil@example.org", "name": "Eve\r\nBcc: all", "lists": ["news"]},
        {"email": "OLD@example.org", "lists": ["news"]},
        {"email": "ünï@exämple.org", "name": "Ünï", "lists": ["news", "notes"]},
    ]
    with django_capture_on_commit_callbacks(execute=False):
        response = admin_api.post("/subscribers/bulk", {"items": items, "consent_given": True})
    assert response.status_code == 200
    body = response.json()
    results = [(r["index"], r["result"]) for r in body["results"]]
    assert results == [
        (0, "created"),
        (1, "error"),
        (2, "unchanged"),
        (3, "error"),  # the same address twice in one call: only the first counts
        (4, "error"),
        (5, "error"),
        (6, "error"),
        (7, "error"),
        (8, "created"),
    ]
    assert (body["created"], body["updated"], body["unchanged"], body["errors"]) == (2, 0, 1, 6)
    assert "Unknown list: missing" in body["results"][4]["errors"][0]
    assert "suppression" in body["results"][5]["errors"][0]
    assert sorted(Subscriber.objects.values_list("email", flat=True)) == [
        "new@example.org",
        "old@example.org",
        "ünï@exämple.org",
    ]
    assert Subscription.objects.filter(status="active").count() == 4


def test_bulk_refuses_more_than_a_thousand_and_changes_nothing(admin_api, news):
    items = [{"email": f"r{n}@example.org", "lists": ["news"]} for n in range(1001)]
    response = admin_api.post("/subscribers/bulk", {"items": items})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "items"
    assert not Subscriber.objects.exists()


def test_bulk_of_a_thousand_in_one_call(admin_api, news, django_capture_on_commit_callbacks):
    items = [{"email": f"r{n:04d}@example.org", "lists": ["news"]} for n in range(1000)]
    with django_capture_on_commit_callbacks(execute=False):
        response = admin_api.post("/subscribers/bulk", {"items": items, "consent_given": True})
    assert response.status_code == 200
    assert response.json()["created"] == 1000
    assert Subscription.objects.filter(status="active", consent_source="api").count() == 1000


def test_the_postgresql_page_equals_the_portable_one(admin_api, news, notes):
    """The page PostgreSQL writes as JSON holds what the ORM path (SQLite's) does."""
    import json
    from datetime import datetime

    from django.db import connection

    from api.selectors import subscribers_page_json
    from api.subscribers import _FIELDS, subscribers_serialize

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    readers = _readers(news, 5)
    Subscription.objects.create(subscriber=readers[0], mailing_list=notes, status="pending", consent_source="api")
    texts, last_id = subscribers_page_json(Subscriber.objects.all(), after=0, limit=3)
    portable = subscribers_serialize(list(Subscriber.objects.order_by("id").values(*_FIELDS)[:3]))

    def times(value):
        if isinstance(value, dict):
            return {k: times(v) for k, v in value.items()}
        if isinstance(value, list):
            return [times(v) for v in value]
        if isinstance(value, str) and value[:4].isdigit() and "T" in value:
            return datetime.fromisoformat(value)
        return value

    assert [times(json.loads(t)) for t in texts] == times(portable)
    assert last_id == readers[2].pk

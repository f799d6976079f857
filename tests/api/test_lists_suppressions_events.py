"""Lists (admins change them), the suppression list, and provider events per issue or reader."""

from __future__ import annotations

from django.utils import timezone

from issues.models import Delivery, DeliveryEvent, Issue
from subscriptions.addresses import email_hash
from subscriptions.models import MailingList, Subscriber, Suppression


def test_admins_create_and_change_lists(admin_api, news):
    body = {"name": "Zines", "slug": "zines", "from_name": "Zines", "from_email": "zines@example.org"}
    created = admin_api.post("/lists", body)
    assert created.status_code == 201
    assert created.json()["double_opt_in"] is True  # the model's defaults
    changed = admin_api.patch(f"/lists/{created.json()['id']}", {"tracking_enabled": True, "description": "Ünï"})
    assert changed.json()["tracking_enabled"] is True and changed.json()["description"] == "Ünï"
    assert MailingList.objects.get(slug="zines").tracking_enabled


def test_list_validation_names_the_field(admin_api, news):
    base = {"name": "Z", "slug": "z", "from_name": "Z", "from_email": "z@example.org"}
    for change, field in (
        ({"slug": "news"}, "slug"),  # taken
        ({"slug": "has space"}, "slug"),
        ({"from_email": "nope"}, "from_email"),
        ({"from_name": "Two\nlines"}, "from_name"),
    ):
        response = admin_api.post("/lists", {**base, **change})
        assert response.status_code == 422, change
        assert field in [e["field"] for e in response.json()["errors"]], response.json()
    assert MailingList.objects.count() == 1


def test_editors_read_lists_but_do_not_change_them(editor_api, news):
    assert [item["slug"] for item in editor_api.get("/lists").json()["items"]] == ["news"]
    assert editor_api.patch(f"/lists/{news.pk}", {"name": "Mine"}).status_code == 403
    assert MailingList.objects.get().name == "News"


def test_suppressions_add_list_search_remove(admin_api, news):
    added = admin_api.post("/suppressions", {"email": "Spam@Example.org", "note": "asked by phone"})
    assert added.status_code == 201 and added.json()["reason"] == "manual"
    again = admin_api.post("/suppressions", {"email": "spam@example.org", "reason": "complaint"})
    assert again.status_code == 200 and again.json()["reason"] == "manual"  # the first reason is kept
    assert admin_api.post("/suppressions", {"email": "x@example.org", "reason": "erased"}).status_code == 422
    assert [s["email"] for s in admin_api.get("/suppressions?q=spam@").json()["items"]] == ["Spam@example.org"]
    entry = added.json()["id"]
    assert admin_api.delete(f"/suppressions/{entry}").status_code == 204
    assert admin_api.delete(f"/suppressions/{entry}").status_code == 404
    assert not Suppression.objects.exists()


def test_an_erased_readers_entry_stays_and_is_found_by_address(admin_api, news):
    erased = Suppression.objects.create(email_hash=email_hash("gone@example.org"), email="", reason="erased")
    assert admin_api.delete(f"/suppressions/{erased.pk}").status_code == 409
    found = admin_api.get("/suppressions?q=GONE@example.org").json()["items"]
    assert [(s["id"], s["email"]) for s in found] == [(erased.pk, "")]


def test_events_per_issue_and_per_reader(editor_api, news):
    reader = Subscriber.objects.create(email="r@example.org")
    other = Subscriber.objects.create(email="o@example.org")
    issue = Issue.objects.create(title="T", body="B")
    mine = Delivery.objects.create(
        issue=issue, subscriber=reader, email="r@example.org", status="delivered", sent_at=timezone.now()
    )
    theirs = Delivery.objects.create(
        issue=issue, subscriber=other, email="o@example.org", status="bounced", sent_at=timezone.now()
    )
    for n, (delivery, kind) in enumerate(((mine, "delivered"), (theirs, "bounced"), (theirs, "complained"))):
        DeliveryEvent.objects.create(
            provider="mailgun",
            event_id=f"e{n}",
            event_type=kind,
            delivery=delivery,
            recipient=delivery.email,
            occurred_at=timezone.now(),
        )
    by_issue = editor_api.get(f"/events?issue={issue.pk}").json()["items"]
    assert [e["event_type"] for e in by_issue] == ["delivered", "bounced", "complained"]
    assert all(e["issue_id"] == issue.pk for e in by_issue)
    by_reader = editor_api.get(f"/events?subscriber={other.pk}&type=bounced").json()["items"]
    assert [(e["subscriber_id"], e["event_type"]) for e in by_reader] == [(other.pk, "bounced")]
    assert editor_api.get("/events?issue=-1").status_code == 422

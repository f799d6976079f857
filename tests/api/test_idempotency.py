"""Idempotency-Key: a repeat answers the first result and changes nothing; another body with the key is 422."""

from __future__ import annotations

import json

from api.models import IdempotencyRecord
from issues.models import Delivery, Issue
from subscriptions.models import Subscriber, Subscription, Suppression
from tests.api.conftest import ApiClient

KEY = {"Idempotency-Key": "signup-42"}


def test_a_repeated_create_answers_the_first_result_and_adds_nothing(
    admin_api, news, django_capture_on_commit_callbacks
):
    body = {"email": "rosa@example.org", "name": "Rosa", "lists": ["news"]}
    with django_capture_on_commit_callbacks() as first_callbacks:
        first = admin_api.post("/subscribers", body, headers=KEY)
    with django_capture_on_commit_callbacks() as second_callbacks:
        # The same JSON, spaced and ordered differently.
        raw = json.dumps(dict(reversed(list(body.items()))), indent=2).encode()
        second = admin_api.call("post", "/subscribers", raw=raw, headers=KEY)
    assert first.status_code == second.status_code == 201
    assert second.content == first.content
    assert second["Idempotent-Replayed"] == "true"
    assert Subscriber.objects.count() == 1 and Subscription.objects.count() == 1
    assert len(first_callbacks) == 1 and second_callbacks == []  # one confirmation mail, not two


def test_the_same_key_with_another_body_is_422_and_changes_nothing(admin_api, news):
    assert admin_api.post("/subscribers", {"email": "a@example.org", "lists": ["news"]}, headers=KEY).status_code == 201
    response = admin_api.post("/subscribers", {"email": "b@example.org", "lists": ["news"]}, headers=KEY)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "Idempotency-Key"
    assert list(Subscriber.objects.values_list("email", flat=True)) == ["a@example.org"]


def test_the_same_key_on_another_path_is_422(editor_api, news):
    issue = editor_api.post("/issues", {"title": "T", "body": "B", "lists": ["news"]}, headers=KEY)
    assert issue.status_code == 201
    other = editor_api.post(f"/issues/{issue.json()['id']}/test", {"addresses": ["a@example.org"]}, headers=KEY)
    assert other.status_code == 422


def test_keys_belong_to_their_token(token_for, news):
    body = {"email": "a@example.org", "lists": ["news"]}
    assert token_for("admin").post("/subscribers", body, headers=KEY).status_code == 201
    # Another token's identical call is a new request: the address exists now.
    assert token_for("admin").post("/subscribers", body, headers=KEY).status_code == 409


def test_a_repeated_send_starts_nothing_twice(editor_api, news):
    issue = Issue.objects.create(title="T", body="B")
    issue.lists.add(news)
    first = editor_api.post(f"/issues/{issue.pk}/send", headers=KEY)
    second = editor_api.post(f"/issues/{issue.pk}/send", headers=KEY)
    assert first.json()["changed"] is True
    assert second.content == first.content and second["Idempotent-Replayed"] == "true"
    # Without the key a repeat is answered truthfully: nothing was started.
    assert editor_api.post(f"/issues/{issue.pk}/send").json()["changed"] is False
    assert Delivery.objects.filter(issue=issue).count() == 0  # no readers on the list


def test_a_repeated_bulk_call_replays_the_per_item_results(admin_api, news):
    body = {"items": [{"email": "a@example.org", "lists": ["news"]}, {"email": "bad", "lists": ["news"]}]}
    first = admin_api.post("/subscribers/bulk", body, headers=KEY)
    second = admin_api.post("/subscribers/bulk", body, headers=KEY)
    assert first.json()["created"] == 1 and second.content == first.content
    assert Subscriber.objects.count() == 1


def test_refusals_of_the_moment_are_not_kept(token_for, admin_api, news):
    # A 403 (missing scope) is not replayed: the same key works once the right token sends it.
    reader_token = token_for("admin", "subscribers:read")
    body = {"email": "s@example.org"}
    assert reader_token.post("/suppressions", body, headers=KEY).status_code == 403
    assert not IdempotencyRecord.objects.exists()
    assert admin_api.post("/suppressions", body, headers=KEY).status_code == 201
    assert admin_api.post("/suppressions", body, headers=KEY).status_code == 201  # replayed, not 200
    assert Suppression.objects.count() == 1


def test_a_malformed_key_is_400(admin_api, news):
    for key in ("", "has space", "x" * 256, "ünï"):
        response = admin_api.call("post", "/suppressions", {"email": "s@example.org"}, headers={"Idempotency-Key": key})
        assert response.status_code in (400, 201), key  # an empty header is no header
        if key:
            assert response.status_code == 400
    assert Suppression.objects.count() <= 1


def test_an_unauthenticated_call_with_a_key_is_401(news):
    response = ApiClient(None).post("/subscribers", {"email": "a@example.org", "lists": ["news"]}, headers=KEY)
    assert response.status_code == 401
    assert not IdempotencyRecord.objects.exists()


def test_a_repeat_while_the_first_is_still_handled_is_409(admin_api, news):
    from api.models import ApiToken

    body = {"email": "a@example.org", "lists": ["news"]}
    first = admin_api.post("/subscribers", body, headers=KEY)
    record = IdempotencyRecord.objects.get()
    # As if the first request had not finished yet: its record has no answer.
    IdempotencyRecord.objects.filter(pk=record.pk).update(status_code=0, body=b"")
    response = admin_api.post("/subscribers", body, headers=KEY)
    assert first.status_code == 201 and response.status_code == 409
    assert ApiToken.objects.count() == 1 and Subscriber.objects.count() == 1


def test_a_body_over_the_upload_limit_is_413_with_or_without_a_key(admin_api, news, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    items = [{"email": f"r{n}@example.org", "lists": ["news"]} for n in range(500)]
    for headers in ({}, KEY):
        response = admin_api.post("/subscribers/bulk", {"items": items}, headers=headers)
        assert response.status_code == 413
        assert response["Content-Type"] == "application/problem+json"
    assert not Subscriber.objects.exists() and not IdempotencyRecord.objects.exists()

"""Schemathesis against the live OpenAPI document of a live server (PostgreSQL in CI).

For every operation, examples generated from the schema (valid and
invalid: schemathesis's negative mode) are sent with an admin token holding every scope: no answer may
be a 5xx or break the schema (status, content type, body, headers).
Each example is also sent with tokens that must not succeed: one with
every scope but the operation's, and an editor's with every scope where
the operation needs permissions editors lack. Bounded: FUZZ_EXAMPLES per
operation and mode, and a deadline per example.

Invalid examples are held to the same checks, not to schemathesis's
negative_data_rejection: that one also expects unknown query parameters
to be refused, and the API ignores them as Django does.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from django.utils import timezone
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.auth import token_allows
from api.models import SCOPES
from api.services import api_token_create
from api.urls import api
from issues.models import Issue
from subscriptions.models import Subscriber, Subscription, Suppression
from tests.api.conftest import staff_make

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "6"))
FUZZ_DEADLINE_MS = 10_000
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture
def seeded(db, live_server, settings):
    """Real rows for the path ids, so examples reach past 404."""
    settings.API_RATE_PER_MINUTE = 0
    from subscriptions.models import MailingList

    news = MailingList.objects.create(name="News", slug="news", from_name="News", from_email="news@example.org")
    reader = Subscriber.objects.create(email="reader@example.org", name="Rea")
    Subscription.objects.create(
        subscriber=reader, mailing_list=news, status="active", consent_source="form", confirmed_at=timezone.now()
    )
    issue = Issue.objects.create(title="First", body="Hello.")
    issue.lists.add(news)
    suppression = Suppression.objects.create(email_hash="0" * 64, email="gone@example.org", reason="manual")
    return {
        "list_id": news.pk,
        "subscriber_id": reader.pk,
        "issue_id": issue.pk,
        "suppression_id": suppression.pk,
    }


def _scopes_of(operation_id: str):
    auth = api._operations()[operation_id].auth_callbacks[0]
    return auth.scopes, auth.permissions


def _fuzz(strategy, check, checks) -> None:
    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=FUZZ_DEADLINE_MS,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case):
        check(case, checks)

    run()


def _fuzz_operation(operation, *, base_url: str, seeded: dict, tokens: dict, failures: list[str]) -> None:
    operation_id = operation.definition.raw["operationId"]
    scopes, permissions = _scopes_of(operation_id)
    admin = tokens["every"].token.user
    others = [s for s in SCOPES if s not in scopes]
    outsider = api_token_create(user=admin, name=f"fuzz not {operation_id}"[:100], scopes=others)
    editor_may = token_allows(tokens["editor"].token, scopes=scopes, permissions=permissions)

    def send(case, secret: str):
        return case.call(base_url=base_url, headers={"Authorization": f"Bearer {secret}"})

    def check(case, checks) -> None:
        response = send(case, tokens["every"].secret)
        case.validate_response(response, checks=checks)
        denied = send(case, outsider.secret)
        if 200 <= denied.status_code < 300:
            failures.append(f"{operation.label} succeeded without {scopes}: {denied.status_code}")
        if not editor_may:
            as_editor = send(case, tokens["editor"].secret)
            if 200 <= as_editor.status_code < 300:
                failures.append(f"{operation.label} succeeded for an editor lacking {permissions}")

    known = {k: v for k, v in seeded.items() if k in operation.path}
    for mode, path_parameters in (
        (GenerationMode.POSITIVE, known or None),
        (GenerationMode.POSITIVE, None),
        (GenerationMode.NEGATIVE, None),
    ):
        _fuzz(operation.as_strategy(generation_mode=mode, path_parameters=path_parameters), check, CHECKS)


def test_fuzz_the_live_schema(seeded, live_server):
    tokens = {
        "every": api_token_create(user=staff_make("fuzz-admin", "Admins"), name="fuzz all", scopes=SCOPES),
        "editor": api_token_create(user=staff_make("fuzz-editor", "Editors"), name="fuzz editor", scopes=SCOPES),
    }
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == len(api._operations())
    failures: list[str] = []
    for operation in operations:
        _fuzz_operation(operation, base_url=live_server.url, seeded=seeded, tokens=tokens, failures=failures)
    assert not failures, "\n".join(failures)

"""The per-issue report and the admin show SMTP bounces and complaints as they show the providers'."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, User
from django.urls import reverse
from django.utils import timezone

from issues.feedback.bounces.intake import bounce_receive
from issues.models import Delivery, DeliveryEvent, UnparsedBounce
from subscriptions.roles import roles_ensure
from tests.feedback.bounces.conftest import issue_sent, returned_mail


def _staff(client, group: str):
    roles_ensure(apps)
    user = User.objects.create_user(f"{group.lower()}1", password="a-long-test-password-42", is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_the_report_lists_smtp_and_provider_bounces_with_source_status_and_diagnostic(client, smtp_sink):
    issue = issue_sent(readers=3)
    dead, complainer, esp = Delivery.objects.filter(issue=issue).order_by("id")
    bounce_receive(raw=returned_mail("postfix_hard", dead, smtp_sink), source="imap")
    bounce_receive(raw=returned_mail("arf_abuse", complainer, smtp_sink), source="pipe")
    DeliveryEvent.objects.create(
        provider="mailgun",
        event_id="mg-1",
        event_type="bounced",
        delivery=esp,
        recipient=esp.email,
        reject_reason="bounced",
        description="550 5.1.2 Host unknown",
        occurred_at=timezone.now(),
    )
    page = _staff(client, "Editors").get(reverse("editor:issue_report", kwargs={"issue_id": issue.pk}))
    text = page.content.decode()
    assert page.status_code == 200
    assert "Bounced reported by smtp: 1" in text and "Complaint reported by smtp: 1" in text
    assert "Bounced reported by mailgun: 1" in text
    for address, source, status in (
        (dead.email, "smtp (imap)", "5.1.1"),
        (complainer.email, "smtp (pipe)", "\u2013"),  # no status: a dash
        (esp.email, "mailgun", "5.1.2"),
    ):
        assert f'<td class="card-title">{address}</td>' in text
        assert f'<td data-label="Source">{source}</td>' in text and f'<td data-label="Status">{status}</td>' in text
    assert "Recipient address rejected: User unknown in virtual mailbox table" in text


@pytest.mark.django_db
def test_the_admin_shows_an_smtp_bounces_source_status_and_words_and_keeps_unread_mail(client, smtp_sink):
    issue = issue_sent(readers=1)
    dead = Delivery.objects.get(issue=issue)
    bounce_receive(raw=returned_mail("gmail_hard", dead, smtp_sink), source="pop3")
    bounce_receive(raw=b"From: odd@example.net\r\nSubject: ???\r\n\r\n\x00\x01 nothing readable\r\n", source="http")
    admin = _staff(client, "Admins")
    events = admin.get("/admin/issues/deliveryevent/").content.decode()
    assert "smtp (pop3)" in events and "5.1.1" in events and "The email account that you tried to reach" in events
    unparsed = UnparsedBounce.objects.get()
    detail = admin.get(f"/admin/issues/unparsedbounce/{unparsed.pk}/change/").content.decode()
    assert "odd@example.net" in detail and "nothing readable" in detail
    admin.post(
        "/admin/issues/unparsedbounce/",
        {"action": "mark_handled", "_selected_action": [unparsed.pk]},
    )
    unparsed.refresh_from_db()
    assert unparsed.handled


@pytest.mark.django_db
def test_editors_cannot_open_unread_returned_mail(client):
    assert _staff(client, "Editors").get("/admin/issues/unparsedbounce/").status_code == 403

import csv
import datetime
import io
import re

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from dwvlist.celery import app as celery_app
from issues import services
from issues.delivery.ledger import ledger_write
from issues.delivery.tasks import complete_ledger
from issues.models import MAX_BODY_LENGTH, Delivery, Issue
from subscriptions.models import MailingList, Subscriber, Subscription, Suppression

PASSWORD = "a-long-test-password-42"


def make_user(username: str, *, staff: bool = True, group: str | None = None, superuser: bool = False) -> User:
    user = User.objects.create_user(
        username, f"{username}@staff.example.org", PASSWORD, is_staff=staff, is_superuser=superuser
    )
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def cast(db):
    return {
        "editor": make_user("eddie", group="Editors"),
        "admin": make_user("ada", group="Admins"),
        "superuser": make_user("root", superuser=True),
        "staff_without_role": make_user("stan"),
        "reader_account": make_user("rita", staff=False, group="Editors"),
    }


@pytest.fixture
def mailing_list(db):
    return MailingList.objects.create(
        name="Detroit Workers' Voice",
        slug="dwv",
        from_name="DWV",
        from_email="list@dwv.example.org",
        footer_text="Write to us: editors@dwv.example.org",
    )


def subscribe(mailing_list, email, *, status="active"):
    reader, _ = Subscriber.objects.get_or_create(email=email)
    return Subscription.objects.create(
        subscriber=reader,
        mailing_list=mailing_list,
        status=status,
        consent_source="form",
        confirmed_at=timezone.now() if status == "active" else None,
    )


@pytest.fixture
def issue(mailing_list):
    issue = Issue.objects.create(title="The plant is closing", byline="By Ana Ruiz", body="Read https://example.com/")
    issue.lists.add(mailing_list)
    return issue


def send_now(client, issue) -> None:
    """Press "Send now", then write the ledger here as the queued task would (tests queue nothing on commit)."""
    client.post(reverse("editor:issue_send", kwargs={"issue_id": issue.pk}))
    issue.refresh_from_db()
    ledger_write(issue=issue)


@pytest.fixture
def editor_client(client, cast):
    client.force_login(cast["editor"])
    return client


def editor_urls(issue_id: int) -> list[tuple[str, str]]:
    get = [
        "home",
        "issue_new",
        "issue_preview",
        "issue_preview_html",
        "issue_edit",
        "issue_schedule",
        "issue_send",
        "issue_progress",
        "issue_progress_json",
        "issue_report",
        "issue_failures_csv",
    ]
    post = ["issue_test_send", "issue_unschedule", "issue_pause", "issue_resume", "issue_cancel", "issue_retry_failed"]
    urls = []
    for name in get + post:
        kwargs = {} if name in ("home", "issue_new") else {"issue_id": issue_id}
        urls.append(("get" if name in get else "post", reverse(f"editor:{name}", kwargs=kwargs)))
    return urls


def test_anonymous_users_are_sent_to_the_login_page_from_every_editor_url(client, issue):
    for method, url in editor_urls(issue.pk):
        response = getattr(client, method)(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/editor/login/?next="), url


@pytest.mark.parametrize("who", ["staff_without_role", "reader_account"])
def test_users_who_are_not_editors_get_403_on_every_editor_url(client, cast, issue, who):
    client.force_login(cast[who])
    for method, url in editor_urls(issue.pk):
        assert getattr(client, method)(url).status_code == 403, url


@pytest.mark.parametrize("who", ["editor", "admin", "superuser"])
def test_editors_and_admins_can_open_every_editor_url(client, cast, issue, who):
    client.force_login(cast[who])
    for method, url in editor_urls(issue.pk):
        data = {"addresses": "me@example.org"} if url.endswith("/test/") else {}
        response = getattr(client, method)(url, data)
        assert response.status_code in (200, 302), url
        if response.status_code == 302:
            assert not response["Location"].startswith("/editor/login/"), url


def test_login_page_logs_an_editor_in(client, cast):
    response = client.get("/editor/login/")
    assert response.status_code == 200
    assert b'<label for="id_username">' in response.content
    response = client.post("/editor/login/", {"username": "eddie", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/editor/"
    assert client.get("/editor/").status_code == 200


def test_logout_is_a_post(editor_client):
    assert editor_client.post("/editor/logout/").status_code == 302
    assert editor_client.get("/editor/").status_code == 302


def test_home_lists_issues_with_their_status(editor_client, issue):
    Issue.objects.create(title="Last week's", body="x", status="sent", sent_at=timezone.now())
    page = editor_client.get("/editor/").content.decode()
    assert "The plant is closing" in page
    assert "Last week&#x27;s" in page
    assert "Draft" in page and "Sent" in page


def test_creating_an_issue_saves_it_and_shows_the_preview(editor_client, cast, mailing_list):
    response = editor_client.post(
        reverse("editor:issue_new"),
        {"title": "Strike vote", "byline": "By the editors", "body": "Vote *yes*.", "lists": [mailing_list.pk]},
    )
    issue = Issue.objects.get(title="Strike vote")
    assert response["Location"] == reverse("editor:issue_preview", kwargs={"issue_id": issue.pk})
    assert issue.author == cast["editor"]
    assert list(issue.lists.all()) == [mailing_list]
    assert issue.status == "draft"


@pytest.mark.parametrize("field", ["title", "subtitle", "byline"])
def test_line_breaks_in_title_subtitle_or_byline_are_refused(editor_client, mailing_list, field):
    data = {"title": "Fine", "subtitle": "", "byline": "", "body": "Text.", "lists": [mailing_list.pk]}
    data[field] = "Fine\r\nBcc: everyone@example.org"
    response = editor_client.post(reverse("editor:issue_new"), data)
    assert response.status_code == 200
    assert "must be a single line, without line breaks" in response.content.decode()
    assert not Issue.objects.exists()


def test_a_body_over_one_megabyte_is_refused_with_a_clear_message(editor_client, mailing_list):
    body = "x" * (MAX_BODY_LENGTH + 1)
    response = editor_client.post(
        reverse("editor:issue_new"), {"title": "Long", "body": body, "lists": [mailing_list.pk]}
    )
    assert response.status_code == 200
    assert "The body is too long: 1,000,001 characters, the most is 1,000,000 (1 MB)." in response.content.decode()
    assert not Issue.objects.exists()


def test_a_send_time_in_the_past_is_refused(editor_client, mailing_list, issue):
    past = (timezone.localtime() - datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    response = editor_client.post(
        reverse("editor:issue_new"), {"title": "Late", "body": "x", "lists": [mailing_list.pk], "scheduled_at": past}
    )
    assert "The send time must be in the future." in response.content.decode()
    response = editor_client.post(reverse("editor:issue_schedule", kwargs={"issue_id": issue.pk}), {"when": past})
    assert response.status_code == 200
    assert "The send time must be in the future." in response.content.decode()
    issue.refresh_from_db()
    assert issue.status == "draft"


def test_a_send_time_on_the_form_leads_to_the_schedule_confirmation(editor_client, mailing_list):
    when = (timezone.localtime() + datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    response = editor_client.post(
        reverse("editor:issue_new"), {"title": "Later", "body": "x", "lists": [mailing_list.pk], "scheduled_at": when}
    )
    issue = Issue.objects.get(title="Later")
    assert response["Location"] == reverse("editor:issue_schedule", kwargs={"issue_id": issue.pk})
    assert issue.status == "draft"


def test_schedule_confirmation_shows_the_deduplicated_recipient_count(editor_client, mailing_list, issue):
    other = MailingList.objects.create(name="Other", slug="other", from_name="O", from_email="o@example.org")
    issue.lists.add(other)
    subscribe(mailing_list, "both@example.org")
    subscribe(other, "both@example.org")
    subscribe(mailing_list, "one@example.org")
    subscribe(mailing_list, "pending@example.org", status="pending")
    subscribe(other, "gone@example.org")
    Suppression.objects.create(email_hash="x" * 64, email="gone@example.org", reason="hard_bounce")
    url = reverse("editor:issue_schedule", kwargs={"issue_id": issue.pk})
    page = editor_client.get(url).content.decode()
    assert "It will go to <strong>2</strong> readers" in page
    when = timezone.localtime() + datetime.timedelta(days=2)
    response = editor_client.post(url, {"when": when.strftime("%Y-%m-%dT%H:%M")})
    assert response.status_code == 302
    issue.refresh_from_db()
    assert issue.status == "scheduled"
    assert issue.scheduled_at == when.replace(second=0, microsecond=0)


def test_unschedule_makes_a_draft_again(editor_client, issue):
    Issue.objects.filter(pk=issue.pk).update(status="scheduled", scheduled_at=timezone.now() + datetime.timedelta(1))
    editor_client.post(reverse("editor:issue_unschedule", kwargs={"issue_id": issue.pk}))
    issue.refresh_from_db()
    assert issue.status == "draft"


def test_send_now_freezes_and_queues_the_ledger_without_writing_it_in_the_request(
    editor_client, mailing_list, issue, monkeypatch, django_capture_on_commit_callbacks
):
    subscribe(mailing_list, "a@example.org")
    subscribe(mailing_list, "b@example.org")
    url = reverse("editor:issue_send", kwargs={"issue_id": issue.pk})
    page = editor_client.get(url).content.decode()
    assert "Send to 2 readers" in page
    assert Issue.objects.get(pk=issue.pk).status == "draft"
    queued = []
    monkeypatch.setattr(services, "task_queue", lambda name, *args: queued.append((name, *args)))
    with django_capture_on_commit_callbacks(execute=True):
        response = editor_client.post(url)
    assert response["Location"] == reverse("editor:issue_progress", kwargs={"issue_id": issue.pk})
    issue.refresh_from_db()
    assert issue.status == "sending"
    assert issue.snapshot_html and issue.snapshot_text
    # The request wrote no ledger: it queued the task that does.
    assert queued == [("issues.tasks.complete_ledger", issue.pk)]
    assert not Delivery.objects.filter(issue=issue).exists()
    page = editor_client.get(response["Location"]).content.decode()
    assert "Preparing the recipient list" in page
    complete_ledger(issue.pk)
    assert set(Delivery.objects.filter(issue=issue).values_list("email", flat=True)) == {
        "a@example.org",
        "b@example.org",
    }


def test_a_second_send_is_a_no_op_that_says_so(editor_client, mailing_list, issue):
    subscribe(mailing_list, "a@example.org")
    url = reverse("editor:issue_send", kwargs={"issue_id": issue.pk})
    send_now(editor_client, issue)
    response = editor_client.post(url, follow=True)
    assert "Nothing was done: this issue is already sending." in response.content.decode()
    assert Delivery.objects.filter(issue=issue).count() == 1


def test_a_sent_issue_is_frozen(editor_client, issue):
    Issue.objects.filter(pk=issue.pk).update(status="sent", sent_at=timezone.now())
    url = reverse("editor:issue_edit", kwargs={"issue_id": issue.pk})
    response = editor_client.post(url, {"title": "Changed", "body": "Changed", "lists": [issue.lists.get().pk]})
    assert response.status_code == 302
    issue.refresh_from_db()
    assert issue.title == "The plant is closing"
    assert "it can no longer be edited" in editor_client.get(response["Location"]).content.decode()


def test_preview_shows_plain_text_headers_and_frames_the_html(editor_client, issue, cast):
    page = editor_client.get(reverse("editor:issue_preview", kwargs={"issue_id": issue.pk})).content.decode()
    frame_url = reverse("editor:issue_preview_html", kwargs={"issue_id": issue.pk})
    assert f'<iframe src="{frame_url}"' in page
    assert "List-Unsubscribe-Post" in page
    assert "By Ana Ruiz" in page
    assert "Unsubscribe: http://testserver/u/preview/" in page
    assert 'value="eddie@staff.example.org"' in page  # the test send goes to the editor by default
    assert "%%" not in page
    frame = editor_client.get(frame_url)
    assert frame["X-Frame-Options"] == "SAMEORIGIN"
    assert "script-src 'none'" in frame["Content-Security-Policy"]
    assert 'href="http://testserver/u/preview/"' in frame.content.decode()
    assert editor_client.get("/editor/")["X-Frame-Options"] == "DENY"


@pytest.fixture
def eager_celery():
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def test_send_a_test_mails_a_copy_marked_as_a_test(
    editor_client, issue, outbox, eager_celery, django_capture_on_commit_callbacks
):
    url = reverse("editor:issue_test_send", kwargs={"issue_id": issue.pk})
    with django_capture_on_commit_callbacks(execute=True):
        response = editor_client.post(url, {"addresses": "one@example.org, Two@Example.ORG"})
    assert response.status_code == 302
    mails = sorted(p.read_text() for p in outbox.glob("*.eml"))
    assert len(mails) == 2
    assert all("Subject: [TEST] The plant is closing" in m for m in mails)
    assert Issue.objects.get(pk=issue.pk).status == "draft"


def test_send_a_test_refuses_bad_addresses(editor_client, issue):
    url = reverse("editor:issue_test_send", kwargs={"issue_id": issue.pk})
    response = editor_client.post(url, {"addresses": "fine@example.org, not-an-address"})
    assert response.status_code == 400
    assert "not-an-address: That is not a valid email address" in response.content.decode()


def test_progress_page_shows_figures_without_javascript_and_json_for_the_poller(editor_client, mailing_list, issue):
    for n in range(4):
        subscribe(mailing_list, f"r{n}@example.org")
    send_now(editor_client, issue)
    Delivery.objects.filter(issue=issue, email__in=["r0@example.org", "r1@example.org"]).update(
        status="sent", sent_at=timezone.now()
    )
    page = editor_client.get(reverse("editor:issue_progress", kwargs={"issue_id": issue.pk})).content.decode()
    assert 'Sent <span data-field="sent">2</span> of <span data-field="total">4</span>' in page
    assert '<progress id="progress-bar" max="100" value="50.0">' in page
    data = editor_client.get(reverse("editor:issue_progress_json", kwargs={"issue_id": issue.pk})).json()
    assert data["sent"] == 2 and data["total"] == 4 and data["pending"] == 2
    assert data["status_display"] == "Sending" and data["ledger_written"] is True
    assert 'id="preparing" hidden>' in page


def test_viewers_of_a_sending_issue_share_a_recent_count_of_its_ledger(editor_client, mailing_list, issue, monkeypatch):
    for n in range(4):
        subscribe(mailing_list, f"r{n}@example.org")
    send_now(editor_client, issue)
    url = reverse("editor:issue_progress_json", kwargs={"issue_id": issue.pk})
    # As if counting took long enough to be worth sharing (at 1M readers it takes about 0.3 s).
    monkeypatch.setattr(services, "PROGRESS_REUSE_FACTOR", 10_000)

    def ledger_counts() -> int:
        return sum('FROM "issues_delivery"' in q["sql"] and "COUNT" in q["sql"] for q in queries.captured_queries)

    with CaptureQueriesContext(connection) as queries:
        first = editor_client.get(url).json()
        Delivery.objects.filter(issue=issue, email="r0@example.org").update(status="sent", sent_at=timezone.now())
        second = editor_client.get(url).json()
    assert ledger_counts() == 1 and first["sent"] == second["sent"] == 0

    Issue.objects.filter(pk=issue.pk).update(status="sent", sent_at=timezone.now())  # once over, counts are fresh
    with CaptureQueriesContext(connection) as queries:
        assert editor_client.get(url).json()["sent"] == 1
    assert ledger_counts() == 1


def test_progress_page_says_when_the_list_of_readers_is_still_being_written(editor_client, mailing_list, issue):
    subscribe(mailing_list, "r0@example.org")
    send_now(editor_client, issue)
    Issue.objects.filter(pk=issue.pk).update(ledger_written_at=None)  # as while a writer is part-way
    page = editor_client.get(reverse("editor:issue_progress", kwargs={"issue_id": issue.pk})).content.decode()
    assert '<p class="message" id="preparing">Preparing the recipient list' in page
    data = editor_client.get(reverse("editor:issue_progress_json", kwargs={"issue_id": issue.pk})).json()
    assert data["ledger_written"] is False


def test_pause_resume_and_cancel(editor_client, mailing_list, issue):
    subscribe(mailing_list, "a@example.org")
    send_now(editor_client, issue)
    editor_client.post(reverse("editor:issue_pause", kwargs={"issue_id": issue.pk}))
    assert Issue.objects.get(pk=issue.pk).status == "paused"
    editor_client.post(reverse("editor:issue_resume", kwargs={"issue_id": issue.pk}))
    assert Issue.objects.get(pk=issue.pk).status == "sending"
    editor_client.post(reverse("editor:issue_cancel", kwargs={"issue_id": issue.pk}))
    assert Issue.objects.get(pk=issue.pk).status == "cancelled"
    assert Delivery.objects.get(issue=issue).status == "cancelled"


def test_progress_page_offers_only_the_controls_that_apply(editor_client, mailing_list, issue):
    subscribe(mailing_list, "a@example.org")
    send_now(editor_client, issue)
    url = reverse("editor:issue_progress", kwargs={"issue_id": issue.pk})

    def shown(page: str) -> dict[str, bool]:
        return {
            "controls": 'id="controls">' in page,
            "pause": 'data-when="sending">' in page,
            "resume": 'data-when="paused">' in page,
        }

    assert shown(editor_client.get(url).content.decode()) == {"controls": True, "pause": True, "resume": False}
    editor_client.post(reverse("editor:issue_pause", kwargs={"issue_id": issue.pk}))
    assert shown(editor_client.get(url).content.decode()) == {"controls": True, "pause": False, "resume": True}
    editor_client.post(reverse("editor:issue_cancel", kwargs={"issue_id": issue.pk}))
    page = editor_client.get(url).content.decode()
    assert 'id="controls" hidden>' in page and "Report</a>" in page


def _rows(issue, mailing_list, statuses: dict[str, int]) -> None:
    """Give the issue's ledger rows in these statuses (claimed rows as held by a batch now)."""
    now = timezone.now()
    n = 0
    for status, count in statuses.items():
        for _ in range(count):
            n += 1
            reader = Subscriber.objects.create(email=f"row{n}@example.org")
            Delivery.objects.create(
                issue=issue,
                subscriber=reader,
                mailing_list=mailing_list,
                email=reader.email,
                status=status,
                sent_at=now if status == "sent" else None,
                claim_token="t" * 32 if status == "claimed" else "",
                claimed_at=now if status == "claimed" else None,
                last_error="the reader unsubscribed before sending" if status == "skipped" else "",
            )


def test_before_the_first_batch_rate_and_time_left_are_blank(editor_client, mailing_list, issue):
    _rows(issue, mailing_list, {"pending": 5})
    Issue.objects.filter(pk=issue.pk).update(
        status="sending", started_at=timezone.now(), ledger_written_at=timezone.now()
    )
    data = editor_client.get(reverse("editor:issue_progress_json", kwargs={"issue_id": issue.pk})).json()
    assert data["rate_per_second"] is None and data["eta_seconds"] is None
    page = editor_client.get(reverse("editor:issue_progress", kwargs={"issue_id": issue.pk})).content.decode()
    assert '<dd data-field="rate">—</dd>' in page and '<dd data-field="eta">—</dd>' in page


def test_rate_is_measured_over_the_last_half_minute_and_gives_the_time_left(editor_client, mailing_list, issue):
    started = timezone.now() - datetime.timedelta(minutes=5)
    _rows(issue, mailing_list, {"sent": 60, "pending": 300})
    # 30 of the sent rows went out long ago: only the last half minute counts.
    old = Delivery.objects.filter(issue=issue, status="sent").order_by("id")[:30].values_list("id", flat=True)
    Delivery.objects.filter(id__in=list(old)).update(sent_at=started)
    Issue.objects.filter(pk=issue.pk).update(status="sending", started_at=started, ledger_written_at=started)
    data = editor_client.get(reverse("editor:issue_progress_json", kwargs={"issue_id": issue.pk})).json()
    assert data["rate_per_second"] == 1.0  # 30 in 30 s
    assert data["eta_seconds"] == 300 and data["eta_text"] == "5 minutes"


def test_after_pause_or_cancel_the_page_says_the_batch_in_flight_finishes(editor_client, mailing_list, issue):
    _rows(issue, mailing_list, {"sent": 10, "claimed": 4, "pending": 6, "skipped": 2})
    Issue.objects.filter(pk=issue.pk).update(
        status="sending", started_at=timezone.now(), ledger_written_at=timezone.now()
    )
    url = reverse("editor:issue_progress", kwargs={"issue_id": issue.pk})
    editor_client.post(reverse("editor:issue_pause", kwargs={"issue_id": issue.pk}))
    page = editor_client.get(url).content.decode()
    assert 'Stopping after the batch in flight (<span data-field="stopping">4</span> readers)' in page
    assert '<span data-field="heading">Stopping:</span>' in page

    confirm = editor_client.get(reverse("editor:issue_cancel", kwargs={"issue_id": issue.pk})).content.decode()
    assert "<strong>6</strong> readers not yet sent it will not get this issue" in confirm
    assert "A batch of 4 readers is being sent right now: it finishes." in confirm
    assert Issue.objects.get(pk=issue.pk).status == "paused"  # asking changed nothing

    response = editor_client.post(reverse("editor:issue_cancel", kwargs={"issue_id": issue.pk}), follow=True)
    page = response.content.decode()
    assert (
        "Cancelled: 6 readers will not get this issue. The batch already being sent (4 readers) finishes first." in page
    )
    data = editor_client.get(reverse("editor:issue_progress_json", kwargs={"issue_id": issue.pk})).json()
    assert (data["sent"], data["cancelled"], data["skipped"], data["pending"], data["stopping"]) == (10, 6, 2, 0, 4)
    assert data["skipped_reasons"] == [{"reason": "the reader unsubscribed before sending", "count": 2}]

    # The batch in flight is recorded: the figures stand, with the cancelled readers on their own.
    Delivery.objects.filter(issue=issue, status="claimed").update(
        status="sent", sent_at=timezone.now(), claim_token="", claimed_at=None
    )
    page = editor_client.get(url).content.decode()
    assert '<span data-field="heading">Cancelled:</span>' in page and 'id="stopping" hidden>' in page
    assert 'Sent <span data-field="sent">14</span> of <span data-field="total">22</span>' in page
    assert '<dd data-field="cancelled">6</dd>' in page


def test_the_finished_page_says_sent_with_the_duration_and_links_the_report(editor_client, mailing_list, issue):
    _rows(issue, mailing_list, {"sent": 3})
    started = timezone.now() - datetime.timedelta(seconds=95)
    Issue.objects.filter(pk=issue.pk).update(status="sent", started_at=started, sent_at=timezone.now())
    page = editor_client.get(reverse("editor:issue_progress", kwargs={"issue_id": issue.pk})).content.decode()
    assert '<span data-field="heading">Sent</span>' in page
    report = reverse("editor:issue_report", kwargs={"issue_id": issue.pk})
    assert f'Sent to every reader it could reach in 2 minutes. <a href="{report}">Read the report</a>' in page


def test_controls_are_post_only(editor_client, issue):
    assert editor_client.get(reverse("editor:issue_pause", kwargs={"issue_id": issue.pk})).status_code == 405


@pytest.fixture
def sent_issue(mailing_list, issue):
    now = timezone.now()
    Issue.objects.filter(pk=issue.pk).update(status="sent", started_at=now, sent_at=now)
    rows = [
        ("ok1@example.org", "delivered", ""),
        ("ok2@example.org", "sent", ""),
        ("bounce@example.org", "bounced", "550 5.1.1 No such user"),
        ("spam@example.org", "complained", ""),
        ("fail@example.org", "failed", '=HYPERLINK("http://evil")'),
    ]
    for email, status, error in rows:
        reader = Subscriber.objects.create(email=email)
        Delivery.objects.create(
            issue=issue,
            subscriber=reader,
            mailing_list=mailing_list,
            email=email,
            status=status,
            last_error=error,
            sent_at=now if status != "failed" else None,
            opened_at=now if email == "ok1@example.org" else None,
        )
    unsubscribed = subscribe(mailing_list, "ok2@example.org")
    Subscription.objects.filter(pk=unsubscribed.pk).update(
        status="unsubscribed", unsubscribed_at=now, unsubscribe_source="link", unsubscribe_issue=issue
    )
    return issue


def test_report_shows_the_figures_and_the_failures(editor_client, sent_issue):
    page = editor_client.get(reverse("editor:issue_report", kwargs={"issue_id": sent_issue.pk})).content.decode()
    for label, value in [
        ("Recipients", 5),
        ("Sent", 4),
        ("Delivered", 1),
        ("Bounced", 1),
        ("Complained", 1),
        ("Unsubscribed because of this issue", 1),
        ("Failed", 1),
    ]:
        assert f'<th scope="row">{label}</th><td>{value}</td>' in page
    assert "550 5.1.1 No such user" in page
    assert "<svg" in page and "Messages sent per minute" in page
    assert "Opened" not in page  # tracking is off for this list


def test_report_shows_opens_only_when_a_list_tracks(editor_client, sent_issue, mailing_list):
    MailingList.objects.filter(pk=mailing_list.pk).update(tracking_enabled=True)
    page = editor_client.get(reverse("editor:issue_report", kwargs={"issue_id": sent_issue.pk})).content.decode()
    assert '<th scope="row">Opened</th><td>1</td>' in page


def test_failures_download_as_csv_without_spreadsheet_formulas(editor_client, sent_issue):
    response = editor_client.get(reverse("editor:issue_failures_csv", kwargs={"issue_id": sent_issue.pk}))
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["email", "status", "attempts", "reason", "updated_at"]
    by_email = {row[0]: row for row in rows[1:]}
    assert set(by_email) == {"bounce@example.org", "spam@example.org", "fail@example.org"}
    assert by_email["bounce@example.org"][3] == "550 5.1.1 No such user"
    assert by_email["fail@example.org"][3] == '\'=HYPERLINK("http://evil")'


def test_failures_csv_guards_an_address_that_looks_like_a_formula(editor_client, sent_issue):
    Delivery.objects.filter(issue=sent_issue, email="fail@example.org").update(email="=cmd@example.org")
    response = editor_client.get(reverse("editor:issue_failures_csv", kwargs={"issue_id": sent_issue.pk}))
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert "'=cmd@example.org" in {row[0] for row in rows[1:]}


def _failures(issue, mailing_list, kinds: dict[str, str]) -> None:
    for email, kind in kinds.items():
        reader = Subscriber.objects.create(email=email)
        Delivery.objects.create(
            issue=issue, subscriber=reader, mailing_list=mailing_list, email=email, status="failed", failure_kind=kind
        )


def test_retry_offers_and_requeues_only_temporary_failures(editor_client, sent_issue, mailing_list):
    Delivery.objects.filter(issue=sent_issue, email="fail@example.org").update(failure_kind="permanent")
    report = reverse("editor:issue_report", kwargs={"issue_id": sent_issue.pk})
    assert "Retry the" not in editor_client.get(report).content.decode()  # only a permanent failure: no button

    _failures(sent_issue, mailing_list, {"t1@example.org": "transient", "t2@example.org": "transient"})
    assert "Retry the 2 temporary failures" in editor_client.get(report).content.decode()
    response = editor_client.post(reverse("editor:issue_retry_failed", kwargs={"issue_id": sent_issue.pk}), follow=True)
    assert "2 temporary failures are queued again." in response.content.decode()
    statuses = dict(
        Delivery.objects.filter(issue=sent_issue, status__in=["failed", "pending"]).values_list("email", "status")
    )
    assert statuses == {"fail@example.org": "failed", "t1@example.org": "pending", "t2@example.org": "pending"}
    assert Issue.objects.get(pk=sent_issue.pk).status == "sending"


@pytest.mark.parametrize(("status", "says"), [("paused", "resume it first"), ("cancelled", "was cancelled")])
def test_retry_waits_for_a_resume_and_never_for_a_cancelled_issue(
    editor_client, sent_issue, mailing_list, status, says
):
    _failures(sent_issue, mailing_list, {"t1@example.org": "transient"})
    Issue.objects.filter(pk=sent_issue.pk).update(status=status)
    response = editor_client.post(reverse("editor:issue_retry_failed", kwargs={"issue_id": sent_issue.pk}), follow=True)
    assert says in response.content.decode()
    assert Delivery.objects.get(issue=sent_issue, email="t1@example.org").status == "failed"


def test_send_a_test_needs_a_list(editor_client, db):
    issue = Issue.objects.create(title="No list yet", body="x")
    response = editor_client.post(
        reverse("editor:issue_test_send", kwargs={"issue_id": issue.pk}), {"addresses": "me@example.org"}, follow=True
    )
    assert "Choose at least one list before sending a test." in response.content.decode()


# The compose page's live preview and autosave ------------------------------------------------


def _editor_client(client, cast):
    client.force_login(cast["editor"])
    return client


def test_compose_page_offers_the_live_preview_and_still_posts_without_javascript(client, cast, mailing_list):
    html = _editor_client(client, cast).get(reverse("editor:issue_new")).content.decode()
    assert 'data-preview-url="/editor/issues/preview/"' in html
    assert 'data-autosave-url="/editor/issues/autosave/"' in html
    assert 'src="/static/js/compose.js"' in html
    # The preview pane is hidden until the script shows it; the plain form posts as before.
    assert 'id="preview-pane" aria-labelledby="live-preview-heading" hidden' in html
    assert "<script>" not in html and " style=" not in html


def test_draft_preview_renders_the_posted_form_without_saving(client, cast, mailing_list):
    c = _editor_client(client, cast)
    data = {
        "preview_slot": "slot-12345678",
        "title": "Strike at the Rouge ☭",
        "byline": "By the desk",
        "body": "First paragraph with https://example.org/a.\n\n<script>alert(1)</script>\n\n*bold move*",
        "lists": [mailing_list.pk],
    }
    answer = c.post(reverse("editor:issue_draft_preview"), data)
    assert answer.status_code == 200
    body = answer.json()
    assert body["subject"] == "Strike at the Rouge ☭"
    assert "By the desk" in body["text"] and "<https://example.org/a>" not in body["text"]
    assert "https://example.org/a" in body["text"]
    assert "Write to us: editors@dwv.example.org" in body["text"]  # the chosen list's footer
    assert "/u/preview/" in body["text"]
    assert Issue.objects.count() == 0
    frame = c.get(body["html_url"])
    assert frame.status_code == 200
    assert "script-src 'none'" in frame["Content-Security-Policy"]
    mail = frame.content.decode()
    assert re.search(r'<a [^>]*href="https://example.org/a"', mail) and re.search(r"<em[^>]*>bold move</em>", mail)
    assert "<script>alert" not in mail
    # Another editor cannot read it.
    other = Client()
    other.force_login(cast["admin"])
    assert "The preview appears here" in other.get(body["html_url"]).content.decode()


def test_draft_preview_without_a_title_still_renders_and_refuses_bad_input(client, cast):
    c = _editor_client(client, cast)
    answer = c.post(reverse("editor:issue_draft_preview"), {"preview_slot": "slot-12345678", "body": "Just text"})
    assert answer.status_code == 200 and answer.json()["subject"] == "(No title yet)"
    bad = c.post(
        reverse("editor:issue_draft_preview"), {"preview_slot": "slot-12345678", "title": "Two\r\nlines", "body": "x"}
    )
    assert bad.status_code == 400
    assert "single line" in bad.json()["errors"]["title"][0]
    forged = c.post(reverse("editor:issue_draft_preview"), {"preview_slot": "../../etc", "title": "x"})
    assert forged.status_code == 400
    huge = c.post(
        reverse("editor:issue_draft_preview"),
        {"preview_slot": "slot-12345678", "title": "x", "body": "y" * (MAX_BODY_LENGTH + 1)},
    )
    assert huge.status_code == 400 and "too long" in huge.json()["errors"]["body"][0]


def test_autosave_creates_one_draft_then_updates_it(client, cast, mailing_list):
    c = _editor_client(client, cast)
    first = c.post(reverse("editor:issue_autosave_new"), {"title": "Work in progress", "body": ""})
    assert first.status_code == 200
    issue = Issue.objects.get()
    assert (issue.title, issue.status, issue.author) == ("Work in progress", "draft", cast["editor"])
    assert first.json()["edit_url"] == reverse("editor:issue_edit", args=[issue.pk])
    again = c.post(
        first.json()["autosave_url"],
        {"title": "Work in progress", "subtitle": "Now with a subtitle", "body": "Text", "lists": [mailing_list.pk]},
    )
    assert again.status_code == 200
    issue.refresh_from_db()
    assert (issue.subtitle, issue.body, list(issue.lists.all())) == ("Now with a subtitle", "Text", [mailing_list])
    assert Issue.objects.count() == 1


def test_autosave_refuses_without_a_title_and_never_changes_a_sent_issue(client, cast):
    c = _editor_client(client, cast)
    assert c.post(reverse("editor:issue_autosave_new"), {"title": "  ", "body": "x"}).status_code == 400
    assert Issue.objects.count() == 0
    sent = Issue.objects.create(title="Gone out", body="As sent", status="sent", sent_at=timezone.now())
    refused = c.post(reverse("editor:issue_autosave", args=[sent.pk]), {"title": "Changed", "body": "Changed"})
    assert refused.status_code == 409
    sent.refresh_from_db()
    assert (sent.title, sent.body) == ("Gone out", "As sent")
    assert c.post(reverse("editor:issue_autosave", args=[999999]), {"title": "x"}).status_code == 404

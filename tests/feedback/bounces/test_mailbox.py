"""The bounce mailbox over IMAP and POP3, against a real Dovecot on loopback."""

from __future__ import annotations

import time

import pytest

from issues.feedback.bounces import intake, parsing
from issues.feedback.bounces.mailbox import mailbox_address, mailbox_poll
from issues.models import Delivery, DeliveryEvent, UnparsedBounce
from subscriptions.models import Suppression
from tests.fakes.dovecot import Dovecot, dovecot_missing
from tests.feedback.bounces.conftest import issue_sent, returned_mail

pytestmark = pytest.mark.skipif(bool(dovecot_missing()), reason=dovecot_missing() or "dovecot")


@pytest.fixture(scope="module")
def dovecot():
    server = Dovecot().start()
    yield server
    server.stop()


@pytest.fixture
def mailbox(dovecot):
    """The server with an empty inbox and Processed folder."""
    with dovecot.client() as client:
        for folder in ("INBOX", "Processed"):
            client.select_folder(folder)
            client.delete_messages(client.search(["ALL"]))
            client.expunge()
    return dovecot


def _corpus(sink, readers: list[Delivery]) -> list[bytes]:
    return [
        returned_mail("postfix_hard", readers[0], sink),
        returned_mail("gmail_hard", readers[1], sink),
        returned_mail("postfix_delayed", readers[2], sink),
        returned_mail("arf_abuse", readers[3], sink),
        returned_mail("out_of_office", readers[4], sink),
        returned_mail("garbage", readers[5]),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("scheme", ["imap", "pop3"])
def test_bounces_in_the_mailbox_are_recorded_then_removed(smtp_sink, mailbox, scheme):
    issue = issue_sent(readers=6)
    readers = list(Delivery.objects.filter(issue=issue).order_by("id"))
    mailbox.deliver(*_corpus(smtp_sink, readers))
    result = mailbox_poll(url=mailbox.url(scheme))
    assert (result.read, result.recorded, result.removed, result.failed) == (6, 4, 6, 0)
    assert mailbox.count() == 0
    statuses = dict(Delivery.objects.filter(issue=issue).values_list("id", "status"))
    assert [statuses[r.pk] for r in readers] == ["bounced", "bounced", "sent", "complained", "sent", "sent"]
    assert set(Suppression.objects.values_list("email", "reason")) == {
        (readers[0].email, "hard_bounce"),
        (readers[1].email, "hard_bounce"),
        (readers[3].email, "complaint"),
    }
    assert UnparsedBounce.objects.get().source == scheme
    assert set(DeliveryEvent.objects.values_list("payload__source", flat=True)) == {scheme}


@pytest.mark.django_db
def test_imap_can_move_recorded_mail_to_a_folder_instead_of_deleting_it(smtp_sink, mailbox, settings):
    settings.BOUNCE_MAILBOX_MOVE_TO = "Processed"
    issue = issue_sent(readers=1)
    mailbox.deliver(returned_mail("postfix_hard", Delivery.objects.get(issue=issue), smtp_sink))
    mailbox_poll(url=mailbox.url("imap", "INBOX"))
    assert (mailbox.count("INBOX"), mailbox.count("Processed")) == (0, 1)


@pytest.mark.django_db
@pytest.mark.parametrize("scheme", ["imap", "pop3"])
def test_a_message_whose_intake_failed_stays_in_the_mailbox_for_the_next_poll(smtp_sink, mailbox, monkeypatch, scheme):
    issue = issue_sent(readers=2)
    first, second = Delivery.objects.filter(issue=issue).order_by("id")
    mailbox.deliver(returned_mail("postfix_hard", first, smtp_sink), returned_mail("postfix_hard", second, smtp_sink))
    real = parsing.mail_read
    failing = returned_mail("postfix_hard", first, smtp_sink)

    def failing_for_the_first(raw):
        if raw == failing:
            raise OSError("the database did not answer")
        return real(raw)

    # The group fails, then each mail is taken in on its own: only the first fails again.
    monkeypatch.setattr(parsing, "mail_read", failing_for_the_first)
    result = mailbox_poll(url=mailbox.url(scheme))
    assert (result.read, result.failed, result.removed) == (2, 1, 1)
    assert mailbox.count() == 1
    assert list(Delivery.objects.filter(issue=issue).order_by("id").values_list("status", flat=True)) == [
        "sent",
        "bounced",
    ]
    monkeypatch.setattr(parsing, "mail_read", real)
    assert mailbox_poll(url=mailbox.url(scheme)).removed == 1
    assert mailbox.count() == 0
    assert set(Delivery.objects.filter(issue=issue).values_list("status", flat=True)) == {"bounced"}


@pytest.mark.django_db
@pytest.mark.parametrize("scheme", ["imap", "pop3"])
def test_a_group_that_fails_to_commit_leaves_all_its_messages_in_the_mailbox(smtp_sink, mailbox, monkeypatch, scheme):
    issue = issue_sent(readers=3)
    readers = list(Delivery.objects.filter(issue=issue).order_by("id"))
    mailbox.deliver(*[returned_mail("postfix_hard", reader, smtp_sink) for reader in readers])

    def database_gone(*args, **kwargs):
        raise OSError("the database went away after the events were inserted")

    monkeypatch.setattr(intake, "effects_apply_grouped", database_gone)
    result = mailbox_poll(url=mailbox.url(scheme))
    assert (result.read, result.recorded, result.failed, result.removed) == (3, 0, 3, 0)
    assert mailbox.count() == 3
    assert not DeliveryEvent.objects.exists() and not Suppression.objects.exists()  # rolled back, group and singles
    assert set(Delivery.objects.filter(issue=issue).values_list("status", flat=True)) == {"sent"}
    monkeypatch.undo()
    result = mailbox_poll(url=mailbox.url(scheme))
    assert (result.read, result.recorded, result.failed, result.removed) == (3, 3, 0, 3)
    assert mailbox.count() == 0
    assert set(Delivery.objects.filter(issue=issue).values_list("status", flat=True)) == {"bounced"}


@pytest.mark.django_db
def test_a_wrong_password_raises_and_removes_nothing(mailbox):
    mailbox.deliver(b"From: x@example.org\r\nSubject: hello\r\n\r\nhi\r\n")
    with pytest.raises(Exception, match=r"(?i)auth|fail"):
        mailbox_poll(url=mailbox.url("imap").replace(mailbox.password, "wrong"))
    assert mailbox.count() == 1


@pytest.mark.parametrize(
    "url",
    ["http://host/", "imap://host/", "imaps://@/", "pop3s://user@/"],
)
def test_a_mailbox_url_without_a_user_or_host_or_with_another_scheme_is_refused(url):
    with pytest.raises(ValueError, match="BOUNCE_MAILBOX_URL"):
        mailbox_address(url)


def test_a_mailbox_url_is_read_with_its_defaults():
    address = mailbox_address("imaps://bounce%40example.org:p%2Fss@mail.example.org/Bounces%20In")
    assert (address.host, address.port, address.user, address.password, address.folder) == (
        "mail.example.org",
        993,
        "bounce@example.org",
        "p/ss",
        "Bounces In",
    )
    assert mailbox_address("pop3://u:p@h").port == 110


@pytest.mark.worker
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_beat_reads_the_mailbox_with_a_real_worker_as_a_self_hoster_runs_it(smtp_sink, mailbox):
    from tests.conftest import child_env, worker_with_beat

    issue = issue_sent(readers=3)
    dead, full, fine = Delivery.objects.filter(issue=issue).order_by("id")
    mailbox.deliver(returned_mail("postfix_hard", dead, smtp_sink), returned_mail("postfix_delayed", full, smtp_sink))
    worker = worker_with_beat(
        env=child_env(
            BOUNCE_MAILBOX_URL=mailbox.url("imap"),
            BOUNCE_MAILBOX_INTERVAL="1",
            BOUNCE_ADDRESS="bounces@lists.example.org",
        ),
        name="bounce-mailbox",
    )
    try:
        worker.wait_ready()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and mailbox.count() > 0:
            time.sleep(0.5)
    finally:
        worker.stop()
    assert mailbox.count() == 0, worker.log.read_text()[-3000:]
    statuses = dict(Delivery.objects.filter(issue=issue).values_list("id", "status"))
    assert (statuses[dead.pk], statuses[full.pk], statuses[fine.pk]) == ("bounced", "sent", "sent")
    assert list(Suppression.objects.values_list("email", flat=True)) == [dead.email]
    assert DeliveryEvent.objects.filter(event_type="deferred", delivery=full).count() == 1

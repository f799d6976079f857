"""The editors' inbox: readers' replies handled, answered, published as letters."""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils import timezone

from dwvlist.emails import email_send, sender_address
from issues.comments.requests import request_kind
from issues.models import Comment, Issue
from subscriptions.by_email import leave_link_mail_send, subscriber_subscribe_by_email
from subscriptions.models import MailingList

ANSWER_MAX_CHARS = 20_000


def comments_published(*, issue: Issue) -> QuerySet[Comment]:
    """Return the letters published under the issue in the archive, oldest first."""
    return Comment.objects.filter(issue=issue, published=True).order_by("received_at")


def comment_handle(*, comment: Comment, user, handled: bool = True) -> None:
    """Mark the comment handled (or unhandled again)."""
    if handled:
        Comment.objects.filter(pk=comment.pk, status=Comment.Status.UNHANDLED).update(
            status=Comment.Status.HANDLED, handled_at=timezone.now(), handled_by=user
        )
    else:
        Comment.objects.filter(pk=comment.pk).update(status=Comment.Status.UNHANDLED, handled_at=None, handled_by=None)


def comment_answer(*, comment: Comment, user, text: str) -> None:
    """Mail the editor's answer to the writer, as a reply in their thread, and mark the comment handled."""
    mailing_list = comment.issue.lists.order_by("pk").first() if comment.issue else None
    from_email = sender_address(mailing_list.from_name, mailing_list.from_email) if mailing_list else None
    headers = {}
    if comment.message_id:
        headers = {"In-Reply-To": comment.message_id, "References": comment.message_id}
    email_send(
        "comment-answer",
        to=comment.sender_email,
        context={"comment": comment, "answer": text, "mailing_list": mailing_list},
        from_email=from_email,
        reply_to=mailing_list.reply_to if mailing_list and mailing_list.reply_to else None,
        headers=headers,
    )
    now = timezone.now()
    Comment.objects.filter(pk=comment.pk).update(answer_text=text, answered_at=now, answered_by=user)
    comment_handle(comment=comment, user=user)


def comment_publish(*, comment: Comment, user) -> None:
    """Publish the comment as a letter under its issue, recording the writer's consent."""
    now = timezone.now()
    Comment.objects.filter(pk=comment.pk, issue__isnull=False).update(
        published=True, published_at=now, consent_at=now, consent_by=user
    )


def comment_unpublish(*, comment: Comment) -> None:
    """Take the letter out of the archive (the consent record stays)."""
    Comment.objects.filter(pk=comment.pk).update(published=False, published_at=None)


def comment_request(*, comment: Comment) -> str | None:
    """Return "subscribe" or "unsubscribe" if the comment reads as that request, else None."""
    return request_kind(subject=comment.subject, text=comment.text)


def comment_request_confirm(*, comment: Comment, user, mailing_list: MailingList) -> bool:
    """Send the writer of a "please add me" a confirmation mail and mark the comment handled.

    The subscription waits for their confirmation like any other; its
    consent record says "asked by email" and names the message that asked.
    Returns False when no mail went out (the address is suppressed, or was
    sent one within the interval).
    """
    queued = subscriber_subscribe_by_email(
        email=comment.sender_email, lists=[mailing_list], message_id=comment.message_id, sent_at=comment.received_at
    )
    comment_handle(comment=comment, user=user)
    return queued


def comment_request_leave(*, comment: Comment, user, mailing_list: MailingList) -> bool:
    """Send the writer of a "remove me" the link that leaves the list, and mark the comment handled."""
    sent = leave_link_mail_send(email=comment.sender_email, mailing_list=mailing_list)
    comment_handle(comment=comment, user=user)
    return sent

"""Each reader's copy: the shared envelope, the personal links, headers and Message-ID."""

from __future__ import annotations

from dwvlist.emails import sender_address
from issues.delivery.mime import message_id_make
from issues.delivery.transports.base import Envelope, Recipient
from issues.models import Issue
from subscriptions.links import list_headers, preferences_url, unsubscribe_url
from subscriptions.models import MailingList


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"


def envelope_for(issue: Issue, primary: MailingList) -> Envelope:
    """Return the parts of the issue mail that every reader shares, from the frozen snapshot."""
    return Envelope(
        issue_id=issue.pk,
        subject=issue.snapshot_subject,
        html=issue.snapshot_html,
        text=issue.snapshot_text,
        from_email=primary.from_email,
        from_name=primary.from_name,
        reply_to=primary.reply_to,
    )


_URL_MARK = "\x00unsubscribe\x00"


def list_headers_template(mailing_list: MailingList) -> dict[str, str]:
    """Return the list's headers with a mark where each reader's unsubscribe URL goes."""
    return list_headers(mailing_list=mailing_list, unsubscribe=_URL_MARK)


def recipient_for(
    *,
    issue: Issue,
    delivery_id: int,
    subscriber_id: int,
    email: str,
    mailing_list: MailingList,
    headers_template: dict[str, str] | None = None,
    nonce: str = "",
) -> Recipient:
    """Return one reader's personal parts: links, headers, Message-ID, metadata.

    `headers_template` (from list_headers_template) saves rebuilding the
    list's headers for each reader of a batch; `nonce` (the batch's claim
    token) saves drawing random bytes for each Message-ID.
    """
    unsubscribe = unsubscribe_url(subscriber_id=subscriber_id, list_id=mailing_list.pk, issue_id=issue.pk)
    template = headers_template if headers_template is not None else list_headers_template(mailing_list)
    return Recipient(
        delivery_id=delivery_id,
        subscriber_id=subscriber_id,
        email=email,
        message_id=message_id_make(
            issue_id=issue.pk, subscriber_id=subscriber_id, domain=_domain_of(mailing_list.from_email), nonce=nonce
        ),
        unsubscribe_url=unsubscribe,
        preferences_url=preferences_url(subscriber_id=subscriber_id),
        headers={name: value.replace(_URL_MARK, unsubscribe) for name, value in template.items()},
        metadata={"issue_id": str(issue.pk), "subscriber_id": str(subscriber_id), "delivery_id": str(delivery_id)},
    )


def issue_primary_list(issue: Issue) -> MailingList:
    """Return the list whose sender and footer the issue uses: the first of its lists."""
    primary = issue.lists.order_by("id").first()
    if primary is None:
        raise ValueError(f"issue {issue.pk} has no list")
    return primary


def preview_headers(*, issue: Issue) -> dict[str, str]:
    """Return the headers a reader's copy carries, with example links, for the editor's preview."""
    primary = issue_primary_list(issue)
    example = recipient_for(
        issue=issue, delivery_id=0, subscriber_id=0, email="reader@example.org", mailing_list=primary
    )
    headers = {
        "From": sender_address(primary.from_name, primary.from_email),
        "To": example.email,
        "Subject": issue.snapshot_subject or issue.title,
        "Message-ID": f"<{example.message_id}>",
    }
    if primary.reply_to:
        headers["Reply-To"] = primary.reply_to
    headers.update(example.headers)
    return headers

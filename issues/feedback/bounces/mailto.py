"""Mail to a list's unsubscribe address, arriving where bounces do (a mailbox or a pipe).

Two forms: the tokenised `LIST+unsubscribe-TOKEN@domain`, whose token
names reader and list like the unsubscribe link's (the sender does not
matter), and the plain `LIST+unsubscribe@domain`, which unsubscribes the
sender's address from that list.
"""

from __future__ import annotations

import email.message
import logging
import re
from email.utils import getaddresses

from django.core.exceptions import ValidationError

from subscriptions.addresses import email_normalize
from subscriptions.links import unsubscribe_mailto
from subscriptions.models import MailingList, Subscriber, Subscription
from subscriptions.services import subscription_unsubscribe, subscription_unsubscribe_by_token

logger = logging.getLogger(__name__)

_TOKENISED = re.compile(r"\+unsubscribe-([^@\s<>]{8,200})@", re.IGNORECASE)
_PLAIN = re.compile(r"\+unsubscribe@", re.IGNORECASE)
RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To", "Cc")


def message_recipients(message: email.message.Message, *, envelope_recipient: str = "") -> list[str]:
    """Return every address the mail was delivered to or addressed to, the envelope's first (case kept: tokens)."""
    values = [envelope_recipient] + [str(v) for name in RECIPIENT_HEADERS for v in message.get_all(name, [])]
    addresses = [address.strip() for _, address in getaddresses([v for v in values if v]) if "@" in address]
    return list(dict.fromkeys(addresses))


def _token_forms(token: str) -> list[str]:
    # An address cannot carry the signed token's ":" unquoted; accept the
    # spellings a local part allows for it.
    forms = [token]
    for stand_in in ("=", "_", "."):
        if ":" not in token and stand_in in token:
            at = token.rfind(stand_in)
            forms.append(token[:at] + ":" + token[at + 1 :])
    return forms


def _sender(message: email.message.Message) -> str:
    addresses = getaddresses([str(message.get("From", ""))])
    return addresses[0][1] if addresses else ""


def mailto_unsubscribe(*, message: email.message.Message, recipients: list[str]) -> bool | None:
    """Unsubscribe as mail to an unsubscribe address asks; return None if it was not sent to one.

    Return True if a subscription changed, False if the mail named nobody we
    could unsubscribe (a forged token, an unknown sender): nothing changes.
    """
    for address in recipients:
        match = _TOKENISED.search(address)
        if match:
            for token in _token_forms(match.group(1)):
                outcome = subscription_unsubscribe_by_token(token=token, source=Subscription.UnsubscribeSource.MAILTO)
                if outcome is not None:
                    return True
            logger.info("Mail to an unsubscribe address with a token we did not make")
            return False
    wanted = [address.lower() for address in recipients if _PLAIN.search(address)]
    if not wanted:
        return None
    mailing_list = next((m for m in MailingList.objects.all() if unsubscribe_mailto(m).lower() in wanted), None)
    if mailing_list is None:
        return False
    try:
        sender = email_normalize(_sender(message))
    except ValidationError:
        return False
    subscriber = Subscriber.objects.filter(email__iexact=sender).first()
    if subscriber is None:
        return False
    return subscription_unsubscribe(
        subscriber_id=subscriber.pk, list_id=mailing_list.pk, source=Subscription.UnsubscribeSource.MAILTO
    )

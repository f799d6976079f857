"""Every event name each provider documents for its tracking webhook, and what we store it as.

Written from the providers' own references (SendGrid Event Webhook
reference, Mailgun events, Postmark webhooks and bounce types, Amazon SES
event publishing contents, Brevo transactional webhooks), one post per
event, so a name anymail does not know shows up here as "unknown".
"""

from __future__ import annotations

import json
import random
import time
import uuid
from datetime import UTC, datetime

from tests.issues.payloads import WebhookPost, mailgun_signature

SOFT = "soft_bounced"

# provider -> {documented name (with its variant after a slash): stored type}
DOCUMENTED: dict[str, dict[str, str]] = {
    "sendgrid": {
        "processed": "queued",
        "dropped": "rejected",
        "delivered": "delivered",
        "deferred": "deferred",
        "bounce": "bounced",
        "bounce/blocked": SOFT,
        "open": "opened",
        "click": "clicked",
        "spamreport": "complained",
        "unsubscribe": "unsubscribed",
        "group_unsubscribe": "unsubscribed",
        "group_resubscribe": "subscribed",
    },
    "mailgun": {
        "accepted": "queued",
        "rejected": "rejected",
        "delivered": "delivered",
        "failed/permanent": "bounced",
        "failed/temporary": "deferred",
        "opened": "opened",
        "clicked": "clicked",
        "unsubscribed": "unsubscribed",
        "complained": "complained",
        "stored": "inbound",
    },
    "postmark": {
        "Delivery": "delivered",
        "Bounce/HardBounce": "bounced",
        "Bounce/SoftBounce": SOFT,
        "Bounce/Transient": "deferred",
        "Bounce/DnsError": "deferred",
        "Bounce/Unknown": SOFT,
        "Bounce/BadEmailAddress": "rejected",
        "Bounce/Blocked": "rejected",
        "Bounce/ManuallyDeactivated": "rejected",
        "Bounce/AutoResponder": "autoresponded",
        "Bounce/SpamNotification": "complained",
        "SpamComplaint": "complained",
        "Open": "opened",
        "Click": "clicked",
        "SubscriptionChange/ManualSuppression": "unsubscribed",
        "SubscriptionChange/HardBounce": "bounced",
        "SubscriptionChange/SpamComplaint": "complained",
        "SubscriptionChange/reactivated": "subscribed",
    },
    "amazon_ses": {
        "Bounce/Permanent": "bounced",
        "Bounce/Transient": SOFT,
        "Bounce/Undetermined": SOFT,
        "Complaint": "complained",
        "Delivery": "delivered",
        "Send": "sent",
        "Reject": "rejected",
        "Open": "opened",
        "Click": "clicked",
        "Rendering Failure": "failed",
        "DeliveryDelay": "deferred",
        "Subscription/unsubscribeAll": "unsubscribed",
        "Subscription/topicOptOut": "unsubscribed",
        "Subscription/optIn": "subscribed",
    },
    "brevo": {
        "request": "queued",
        "delivered": "delivered",
        "hard_bounce": "bounced",
        "soft_bounce": SOFT,
        "blocked": "rejected",
        "spam": "complained",
        "invalid_email": "bounced",
        "deferred": "deferred",
        "click": "clicked",
        "opened": "opened",
        "unique_opened": "opened",
        "proxy_open": "opened",
        "unique_proxy_open": "opened",
        "unsubscribed": "unsubscribed",
        "error": "failed",
    },
}


def _iso(now: float) -> str:
    return datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _sendgrid(name: str, recipient: str, message_id: str, now: float) -> dict:
    event, _, variant = name.partition("/")
    item = {
        "email": recipient,
        "timestamp": int(now),
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "event": event,
        "category": ["issue"],
        "sg_event_id": uuid.uuid4().hex,
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "anymail_id": message_id,
    }
    if event == "bounce":
        item.update(type=variant or "bounce", reason="550 5.1.1 user unknown", status="5.1.1")
    elif event == "dropped":
        item.update(reason="Bounced Address", status="5.0.0")
    elif event == "deferred":
        item.update(response="400 try again later", attempt="5")
    elif event in ("open", "click"):
        item.update(useragent="Mozilla/5.0", ip="192.0.2.1", sg_machine_open=False)
        if event == "click":
            item["url"] = "https://dwv.example/a/1"
    elif event in ("group_unsubscribe", "group_resubscribe"):
        item.update(asm_group_id=10, useragent="Mozilla/5.0", ip="192.0.2.1")
    return item


def _mailgun(name: str, recipient: str, message_id: str, now: float) -> dict:
    event, _, severity = name.partition("/")
    token = uuid.uuid4().hex
    data = {
        "event": event,
        "timestamp": now,
        "id": uuid.uuid4().hex[:22],
        "log-level": "info",
        "recipient": recipient,
        "recipient-domain": recipient.rpartition("@")[2],
        "tags": ["issue"],
        "user-variables": {},
        "message": {"headers": {"to": recipient, "message-id": message_id.strip("<>"), "subject": "The issue"}},
    }
    if event == "failed":
        data.update(
            severity=severity,
            reason="bounce" if severity == "permanent" else "generic",
            **{"delivery-status": {"code": 550 if severity == "permanent" else 452, "message": "mailbox says no"}},
        )
    elif event == "rejected":
        data["reject"] = {"reason": "Sandbox subdomains are for test purposes only", "description": ""}
    elif event == "delivered":
        data["delivery-status"] = {"code": 250, "message": "OK", "description": ""}
    elif event == "stored":
        data["storage"] = {"url": "https://storage.mailgun.net/v3/domains/mg/messages/k", "key": "k"}
    return {
        "signature": {
            "timestamp": str(int(now)),
            "token": token,
            "signature": mailgun_signature(timestamp=str(int(now)), token=token),
        },
        "event-data": data,
    }


def _postmark(name: str, recipient: str, message_id: str, now: float) -> dict:
    record, _, variant = name.partition("/")
    common = {"MessageID": message_id, "ServerID": 23, "MessageStream": "outbound", "Tag": "issue", "Metadata": {}}
    if record == "Bounce":
        return {
            **common,
            "RecordType": "Bounce",
            "ID": random.randint(10**12, 10**15),
            "Type": variant,
            "TypeCode": 1,
            "Name": variant,
            "Description": f"A {variant} bounce.",
            "Details": "smtp;550 5.1.1",
            "Email": recipient,
            "From": "list@dwv.example",
            "BouncedAt": _iso(now),
            "Inactive": variant == "HardBounce",
            "CanActivate": True,
            "Subject": "The issue",
        }
    if record == "SpamComplaint":
        return {**common, "RecordType": "SpamComplaint", "ID": random.randint(10**12, 10**15), "Type": "SpamComplaint",
                "Email": recipient, "BouncedAt": _iso(now), "Description": "Marked as spam."}  # fmt: skip
    if record == "Delivery":
        return {
            **common,
            "RecordType": "Delivery",
            "Recipient": recipient,
            "DeliveredAt": _iso(now),
            "Details": "250 OK",
        }
    if record in ("Open", "Click"):
        extra = {"FirstOpen": True, "ReadSeconds": 5} if record == "Open" else {"OriginalLink": "https://dwv.example/a"}
        return {**common, "RecordType": record, "Recipient": recipient, "ReceivedAt": _iso(now),
                "Platform": "Desktop", "UserAgent": "Mozilla/5.0", **extra}  # fmt: skip
    suppress = variant != "reactivated"
    return {**common, "RecordType": "SubscriptionChange", "Recipient": recipient, "ChangedAt": _iso(now),
            "Origin": "Recipient", "SuppressSending": suppress,
            "SuppressionReason": variant if suppress else None}  # fmt: skip


def _amazon_ses(name: str, recipient: str, message_id: str, now: float) -> dict:
    event, _, variant = name.partition("/")
    when = _iso(now)
    body: dict = {
        "eventType": event,
        "mail": {
            "timestamp": when,
            "source": "list@dwv.example",
            "sendingAccountId": "123456789012",
            "messageId": message_id,
            "destination": [recipient],
            "headersTruncated": False,
            "headers": [{"name": "To", "value": recipient}],
            "commonHeaders": {"from": ["list@dwv.example"], "to": [recipient], "subject": "The issue"},
            "tags": {"ses:configuration-set": ["dwv"]},
        },
    }
    if event == "Bounce":
        body["bounce"] = {
            "bounceType": variant,
            "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": recipient, "diagnosticCode": "smtp; 550"}],
            "timestamp": when,
            "feedbackId": uuid.uuid4().hex,
        }
    elif event == "Complaint":
        body["complaint"] = {"complainedRecipients": [{"emailAddress": recipient}], "timestamp": when,
                             "feedbackId": uuid.uuid4().hex, "complaintFeedbackType": "abuse"}  # fmt: skip
    elif event == "Delivery":
        body["delivery"] = {"timestamp": when, "recipients": [recipient], "smtpResponse": "250 ok"}
    elif event == "Send":
        body["send"] = {}
    elif event == "Reject":
        body["reject"] = {"reason": "Bad content"}
    elif event == "Open":
        body["open"] = {"timestamp": when, "userAgent": "Mozilla/5.0", "ipAddress": "192.0.2.1"}
    elif event == "Click":
        body["click"] = {"timestamp": when, "userAgent": "Mozilla/5.0", "ipAddress": "192.0.2.1",
                         "link": "https://dwv.example/a", "linkTags": {}}  # fmt: skip
    elif event == "Rendering Failure":
        body["failure"] = {"templateName": "issue", "errorMessage": "Attribute 'name' is not present"}
    elif event == "DeliveryDelay":
        body["deliveryDelay"] = {
            "timestamp": when,
            "delayType": "MailboxFull",
            "expirationTime": when,
            "delayedRecipients": [{"emailAddress": recipient, "status": "4.2.2", "diagnosticCode": "452 full"}],
        }
    elif event == "Subscription":
        topic_status = "OptOut" if variant == "topicOptOut" else "OptIn"
        body["subscription"] = {
            "contactList": "ContactListName",
            "timestamp": when,
            "source": "UnsubscribeHeader",
            "newTopicPreferences": {
                "unsubscribeAll": variant == "unsubscribeAll",
                "topicSubscriptionStatus": [{"topicName": "ExampleTopicName", "subscriptionStatus": topic_status}],
            },
            "oldTopicPreferences": {"unsubscribeAll": False, "topicSubscriptionStatus": []},
        }
    return body


def _brevo(name: str, recipient: str, message_id: str, now: float) -> dict:
    item = {
        "event": name,
        "email": recipient,
        "id": 1234567,
        "date": "2025-08-01 16:45:32",
        "ts": int(now),
        "message-id": message_id,
        "ts_event": int(now),
        "subject": "The issue",
        "sending_ip": "185.41.28.109",
        "ts_epoch": int(now * 1000) + random.randint(0, 999),
        "tags": ["issue"],
    }
    if name in ("hard_bounce", "soft_bounce", "blocked", "invalid_email", "deferred", "error"):
        item["reason"] = "550 5.1.1 no such user" if name != "deferred" else "421 try later"
    if name == "click":
        item["link"] = "https://dwv.example/a"
    return item


def documented_post(provider: str, name: str, *, recipient: str, message_id: str) -> WebhookPost:
    """Return the provider's post of one event of this documented name."""
    now = time.time()
    path = f"/webhooks/{provider}/tracking/"
    if provider == "sendgrid":
        return WebhookPost(path, json.dumps([_sendgrid(name, recipient, message_id, now)]).encode(), "application/json")
    if provider == "mailgun":
        return WebhookPost(path, json.dumps(_mailgun(name, recipient, message_id, now)).encode(), "application/json")
    if provider == "postmark":
        return WebhookPost(path, json.dumps(_postmark(name, recipient, message_id, now)).encode(), "application/json")
    if provider == "brevo":
        return WebhookPost(path, json.dumps(_brevo(name, recipient, message_id, now)).encode(), "application/json")
    sns_id = str(uuid.uuid4())
    envelope = {
        "Type": "Notification",
        "MessageId": sns_id,
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:dwv-ses-events",
        "Subject": "Amazon SES Email Event Notification",
        "Message": json.dumps(_amazon_ses(name, recipient, message_id, now)),
        "Timestamp": _iso(now),
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
    }
    headers = {"X-Amz-Sns-Message-Type": "Notification", "X-Amz-Sns-Message-Id": sns_id}
    return WebhookPost(path, json.dumps(envelope).encode(), "text/plain; charset=UTF-8", headers)

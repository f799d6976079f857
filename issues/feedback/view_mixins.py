"""Where our webhook views part from anymail's: the SNS subscription handshake and Brevo's attachments.

- Amazon SES: SNS first posts a SubscriptionConfirmation. With auto-confirm
  off (ANYMAIL_AMAZON_SES_AUTO_CONFIRM_SNS_SUBSCRIPTIONS=0) it is answered
  200 and its SubscribeURL logged for an admin to open; AWS is not called.
  With it on, a failure to reach AWS is logged with the same URL and
  answered 503, so SNS asks again, instead of a misleading 400.
- Brevo inbound: the post names attachments that anymail would download
  from Brevo's API with the API key. Readers' attachments are never kept
  (only counted), so they are never downloaded: the reply's text is taken
  with or without ANYMAIL_BREVO_API_KEY, and nothing fails when it is unset.
"""

from __future__ import annotations

import logging

from anymail.exceptions import AnymailConfigurationError, AnymailWebhookValidationFailure
from anymail.inbound import AnymailInboundMessage

logger = logging.getLogger(__name__)


class SnsConfirmationFailed(Exception):
    """AWS could not be asked to confirm an SNS subscription."""


class SnsConfirmationMixin:
    """Confirm SNS subscriptions only when told to, and never answer a misleading 400."""

    @classmethod
    def applies(cls, view_class: type) -> bool:
        return hasattr(view_class, "auto_confirm_sns_subscription")

    def auto_confirm_sns_subscription(self, sns_message):
        topic = str(sns_message.get("TopicArn", ""))[:300]
        subscribe_url = str(sns_message.get("SubscribeURL", ""))[:2000]
        if not self.auto_confirm_enabled:
            logger.warning(
                "Amazon SNS asks to confirm the subscription of topic %s; auto-confirm is off, "
                "so open this URL to confirm it: %s",
                topic,
                subscribe_url,
            )
            return
        try:
            super().auto_confirm_sns_subscription(sns_message)
        except AnymailWebhookValidationFailure:
            raise
        except Exception as exc:  # no credentials, no network, AWS refused
            logger.error(
                "Could not confirm the Amazon SNS subscription of topic %s (%s); open this URL to confirm it: %s",
                topic,
                str(exc)[:300],
                subscribe_url,
            )
            raise SnsConfirmationFailed(str(exc)) from exc
        logger.info("Amazon SNS subscription of topic %s confirmed", topic)


class BrevoAttachmentsMixin:
    """Take Brevo inbound mail without downloading its attachments (so without needing the API key)."""

    @classmethod
    def applies(cls, view_class: type) -> bool:
        return hasattr(view_class, "_fetch_attachment")

    def __init__(self, **kwargs):
        try:
            super().__init__(**kwargs)
        except AnymailConfigurationError:  # ANYMAIL_BREVO_API_KEY unset: nothing here needs it
            super().__init__(**{**kwargs, "api_key": ""})

    def _fetch_attachment(self, attachment):
        # An empty stand-in with the attachment's name and type: counted as
        # dropped like every other provider's attachments.
        attachment = attachment if isinstance(attachment, dict) else {}
        return AnymailInboundMessage.construct_attachment(
            content_type=str(attachment.get("ContentType") or "application/octet-stream"),
            content=b"",
            filename=attachment.get("Name"),
            content_id=attachment.get("ContentID"),
        )


VIEW_MIXINS = (SnsConfirmationMixin, BrevoAttachmentsMixin)

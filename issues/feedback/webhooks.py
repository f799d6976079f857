"""Provider webhooks: anymail's views, made strict, and the receivers of their signals.

anymail checks the credentials (the shared basic-auth secret, and Mailgun's
signature) and normalises each provider's payload. On top of that:
a payload anymail cannot parse gets 400 and stores nothing (anymail would
answer 500 and have the provider retry it forever), and each request applies
effects inline only for FEEDBACK_INLINE_SECONDS, queueing the rest to Celery,
so a burst of events is stored quickly whatever the effects cost.
"""

from __future__ import annotations

import contextvars
import logging

from anymail.exceptions import AnymailWebhookValidationFailure
from anymail.signals import inbound, tracking
from django.db import transaction
from django.dispatch import receiver
from django.http import HttpResponse, HttpResponseBadRequest, HttpResponseForbidden

from issues.feedback.events import provider_name
from issues.feedback.receive import events_receive
from issues.feedback.rules import events_queue
from issues.feedback.view_mixins import VIEW_MIXINS, SnsConfirmationFailed

logger = logging.getLogger(__name__)


class _Collected:
    """The current request's tracking events, taken in together once anymail has parsed them all."""

    def __init__(self) -> None:
        self.events: list = []
        self.esp_name = ""


_collected: contextvars.ContextVar[_Collected | None] = contextvars.ContextVar("feedback_events", default=None)


class WebhookPayloadInvalid(Exception):
    """The provider's payload could not be parsed."""


def _deferred_queue(event_ids: list[int]) -> None:
    event_ids = list(event_ids)
    transaction.on_commit(lambda: events_queue(event_ids=event_ids))


def strict_view(view_class: type):
    """Return a view for anymail's view_class that answers a malformed payload with 400."""

    mixins = tuple(mixin for mixin in VIEW_MIXINS if mixin.applies(view_class))
    base = type(view_class.__name__, (*mixins, view_class), {}) if mixins else view_class

    class StrictWebhookView(base):
        def run_validators(self, request):
            try:
                super().run_validators(request)
            except AnymailWebhookValidationFailure:
                raise
            except Exception as exc:  # e.g. SES's check of a body that is not JSON
                raise WebhookPayloadInvalid(str(exc)) from exc

        def parse_events(self, request):
            try:
                # Parse everything before the first signal, so a payload
                # that fails half-way stores nothing.
                return list(super().parse_events(request))
            except SnsConfirmationFailed:
                raise
            except Exception as exc:
                raise WebhookPayloadInvalid(str(exc)) from exc

        def post(self, request, *args, **kwargs):
            if not (
                getattr(self, "basic_auth", None)
                or getattr(self, "webhook_signing_key", None)
                or getattr(self, "webhook_secret", None)
            ):
                # anymail only warns when no credential is configured; an
                # unauthenticated webhook could unsubscribe or suppress anyone.
                logger.error("%s webhook refused: set ANYMAIL_WEBHOOK_SECRET", self.esp_name)
                return HttpResponseForbidden("Webhook authentication is not configured.\n", content_type="text/plain")
            if self.signal is inbound:
                from issues.feedback.uploads import inbound_body_read

                refused = inbound_body_read(request)
                if refused is not None:
                    return refused
            collected = _Collected()
            token = _collected.set(collected)
            try:
                response = super().post(request, *args, **kwargs)
            except WebhookPayloadInvalid as exc:
                logger.warning("%s webhook: malformed payload: %s", self.esp_name, str(exc)[:300])
                return HttpResponseBadRequest("Malformed payload.\n", content_type="text/plain")
            except SnsConfirmationFailed:
                message = "Could not confirm the subscription with AWS; the SubscribeURL is in the log.\n"
                return HttpResponse(message, status=503, content_type="text/plain")
            finally:
                _collected.reset(token)
            if collected.events:
                tracking_take(esp_name=collected.esp_name, events=collected.events)
            return response

    StrictWebhookView.__name__ = f"Strict{view_class.__name__}"
    StrictWebhookView.__qualname__ = StrictWebhookView.__name__
    return StrictWebhookView.as_view()


def tracking_take(*, esp_name: str, events: list) -> None:
    """Store the events together, apply their effects, and leave what had no time to Celery."""
    outcome = events_receive(provider=provider_name(esp_name), events=events)
    if outcome.deferred:
        _deferred_queue(outcome.deferred)


@receiver(tracking, dispatch_uid="issues.feedback.webhooks.tracking_received")
def tracking_received(sender, event, esp_name, **kwargs) -> None:
    """Collect the event for its request's batch (or take it in at once, outside a webhook request)."""
    collected = _collected.get()
    if collected is None:
        tracking_take(esp_name=esp_name, events=[event])
        return
    collected.esp_name = esp_name
    collected.events.append(event)


@receiver(inbound, dispatch_uid="issues.feedback.webhooks.inbound_received")
def inbound_received(sender, event, esp_name, **kwargs) -> None:
    """Turn a reader's mail into a comment or an unsubscribe."""
    from issues.comments.inbound import inbound_receive

    inbound_receive(provider=provider_name(esp_name), event=event)

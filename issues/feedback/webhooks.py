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
import time

from anymail.exceptions import AnymailWebhookValidationFailure
from anymail.signals import inbound, tracking
from django.conf import settings
from django.db import transaction
from django.dispatch import receiver
from django.http import HttpResponseBadRequest, HttpResponseForbidden

from issues.feedback.events import event_record, provider_name, tracking_list_ids
from issues.feedback.rules import event_apply, events_queue

logger = logging.getLogger(__name__)


class _Budget:
    """The current request's time for inline effects, and the events left over."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.deferred: list[int] = []
        self._tracking_lists: set[int] | None = None

    def tracking_lists(self) -> set[int]:
        """Return the lists that record opens and clicks, read once per request."""
        if self._tracking_lists is None:
            self._tracking_lists = tracking_list_ids()
        return self._tracking_lists

    def allows(self) -> bool:
        return time.monotonic() < self.deadline


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("feedback_budget", default=None)


class WebhookPayloadInvalid(Exception):
    """The provider's payload could not be parsed."""


def _deferred_queue(event_ids: list[int]) -> None:
    event_ids = list(event_ids)
    transaction.on_commit(lambda: events_queue(event_ids=event_ids))


def strict_view(view_class: type):
    """Return a view for anymail's view_class that answers a malformed payload with 400."""

    class StrictWebhookView(view_class):
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
            budget = _Budget(settings.FEEDBACK_INLINE_SECONDS)
            token = _budget.set(budget)
            try:
                response = super().post(request, *args, **kwargs)
            except WebhookPayloadInvalid as exc:
                logger.warning("%s webhook: malformed payload: %s", self.esp_name, str(exc)[:300])
                return HttpResponseBadRequest("Malformed payload.\n", content_type="text/plain")
            finally:
                _budget.reset(token)
            if budget.deferred:
                _deferred_queue(budget.deferred)
            return response

    StrictWebhookView.__name__ = f"Strict{view_class.__name__}"
    StrictWebhookView.__qualname__ = StrictWebhookView.__name__
    return StrictWebhookView.as_view()


@receiver(tracking, dispatch_uid="issues.feedback.webhooks.tracking_received")
def tracking_received(sender, event, esp_name, **kwargs) -> None:
    """Store the event, then apply its effects now or leave them for Celery."""
    budget = _budget.get()
    tracking_lists = budget.tracking_lists() if budget is not None else None
    stored = event_record(provider=provider_name(esp_name), event=event, tracking_lists=tracking_lists)
    if stored is None:
        return
    if budget is not None and not budget.allows():
        budget.deferred.append(stored.pk)
        return
    try:
        event_apply(event_id=stored.pk, event=stored)
    except Exception:
        # The event is stored; answer 200 and let a worker retry the effects.
        logger.exception("Applying %s event %s failed; queued", esp_name, stored.pk)
        if budget is not None:
            budget.deferred.append(stored.pk)
        else:
            _deferred_queue([stored.pk])


@receiver(inbound, dispatch_uid="issues.feedback.webhooks.inbound_received")
def inbound_received(sender, event, esp_name, **kwargs) -> None:
    """Turn a reader's mail into a comment or an unsubscribe."""
    from issues.comments.inbound import inbound_receive

    inbound_receive(provider=provider_name(esp_name), event=event)

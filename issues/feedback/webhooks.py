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

import redis
from anymail.exceptions import AnymailConfigurationError, AnymailWebhookValidationFailure
from anymail.signals import inbound, tracking
from django.conf import settings
from django.db import transaction
from django.dispatch import receiver
from django.http import Http404, HttpResponse, HttpResponseBadRequest, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt

from dwvlist.metrics import metric_add, metric_observe
from issues.feedback.events import event_record, provider_name, tracking_list_ids
from issues.feedback.replay import mailgun_signature_claim, mailgun_signature_release
from issues.feedback.rules import event_apply, events_queue

logger = logging.getLogger(__name__)


def webhook_request_report(*, provider: str, budget: _Budget, status: int) -> None:
    """Log one webhook request: its events, those stored (not replays), applied here and queued; count it."""
    seconds = time.monotonic() - budget.started
    figures = {"events": budget.events, "stored": budget.stored, "applied": budget.applied}
    logger.info(
        "%s webhook: %d events, %d new, %d applied, %d queued in %.3f s",
        provider,
        *figures.values(),
        len(budget.deferred),
        seconds,
        extra={**figures, "queued": len(budget.deferred), "seconds": round(seconds, 4), "status": status},
    )
    metric_add("dwvlist_webhook_requests", provider=provider)
    metric_observe("dwvlist_webhook_request_duration_seconds", seconds, provider=provider)


class _Budget:
    """The current request's time for inline effects, and the events left over."""

    def __init__(self, seconds: float) -> None:
        self.started = time.monotonic()
        self.deadline = self.started + seconds
        self.deferred: list[int] = []
        self.events = self.stored = self.applied = 0  # for the request's log line
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


def strict_view(view_class: type, provider: str):
    """Return a view for anymail's view_class: 404 unless the provider is configured, 400 for a malformed payload."""

    class StrictWebhookView(view_class):
        replay_key: str | None = None

        def run_validators(self, request):
            try:
                super().run_validators(request)
            except AnymailWebhookValidationFailure:
                raise
            except Exception as exc:  # e.g. SES's check of a body that is not JSON
                raise WebhookPayloadInvalid(str(exc)) from exc
            if self.esp_name == "Mailgun":
                self.replay_key = mailgun_signature_claim(request)

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
            except redis.RedisError:
                logger.exception("%s webhook: Redis is unreachable; asking the provider to retry", self.esp_name)
                return HttpResponse("Try again later.\n", status=503, content_type="text/plain")
            except AnymailWebhookValidationFailure:
                raise
            except Exception:
                # Our failure, not the provider's: its retry of this very request must get in.
                if self.replay_key:
                    mailgun_signature_release(self.replay_key)
                raise
            finally:
                _budget.reset(token)
            if budget.deferred:
                _deferred_queue(budget.deferred)
            webhook_request_report(provider=provider_name(self.esp_name), budget=budget, status=response.status_code)
            return response

    StrictWebhookView.__name__ = f"Strict{view_class.__name__}"
    StrictWebhookView.__qualname__ = StrictWebhookView.__name__
    inner = StrictWebhookView.as_view()

    @csrf_exempt
    def view(request, *args, **kwargs):
        # Only the providers this site uses answer; the rest are not there.
        if not webhook_provider_configured(provider):
            raise Http404("No such webhook.")
        try:
            return inner(request, *args, **kwargs)
        except AnymailConfigurationError as exc:  # e.g. Postal without its webhook key
            logger.error("%s webhook is not usable: %s", provider, str(exc).splitlines()[0][:300])
            raise Http404("No such webhook.") from None

    view.view_class = StrictWebhookView
    return view


def webhook_provider_configured(provider: str) -> bool:
    """Return True if the site uses this provider: it is EMAIL_TRANSPORT, or an ANYMAIL_<PROVIDER>_* setting is set."""
    prefix = provider.upper() + "_"
    return provider == settings.EMAIL_TRANSPORT or any(key.startswith(prefix) for key in settings.ANYMAIL)


@receiver(tracking, dispatch_uid="issues.feedback.webhooks.tracking_received")
def tracking_received(sender, event, esp_name, **kwargs) -> None:
    """Store the event, then apply its effects now or leave them for Celery."""
    budget = _budget.get()
    tracking_lists = budget.tracking_lists() if budget is not None else None
    stored = event_record(provider=provider_name(esp_name), event=event, tracking_lists=tracking_lists)
    if budget is not None:
        budget.events, budget.stored = budget.events + 1, budget.stored + (stored is not None)
    if stored is None:
        return
    if budget is not None and not budget.allows():
        budget.deferred.append(stored.pk)
        return
    try:
        event_apply(event_id=stored.pk, event=stored)
        if budget is not None:
            budget.applied += 1
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

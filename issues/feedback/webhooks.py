"""Provider webhooks: anymail's views, made strict, and the receivers of their signals.

anymail checks the credentials (the shared basic-auth secret, and Mailgun's
signature) and normalises each provider's payload. On top of that: only the
providers the site uses answer (the others 404); a Mailgun signature is
accepted once and only while fresh; a payload anymail cannot parse gets 400
and stores nothing (anymail would answer 500 and have the provider retry it
forever); a request's events are taken in together: put on a Redis stream
and stored there or by a worker in groups (pending.py, receive.py); and each
request is logged and counted, its figures sent to Redis in one round trip.
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
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from dwvlist.metrics import metric_add, metric_observe, metrics_deferred
from issues.feedback.events import events_stored_report, provider_name
from issues.feedback.intake import incoming_from
from issues.feedback.pending import events_accept
from issues.feedback.receive import items_receive
from issues.feedback.replay import mailgun_signature_claim, mailgun_signature_release
from issues.feedback.rules import events_queue
from issues.feedback.view_mixins import VIEW_MIXINS, SnsConfirmationFailed

logger = logging.getLogger(__name__)


class _Collected:
    """The current request's tracking events, taken in together once anymail has parsed them all."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.events: list = []
        self.esp_name = ""
        self.stored = self.applied = self.queued = self.waiting = 0  # for the request's log line


_collected: contextvars.ContextVar[_Collected | None] = contextvars.ContextVar("feedback_events", default=None)


class WebhookPayloadInvalid(Exception):
    """The provider's payload could not be parsed."""


def _deferred_queue(event_ids: list[int]) -> None:
    event_ids = list(event_ids)
    transaction.on_commit(lambda: events_queue(event_ids=event_ids))


def webhook_request_report(*, provider: str, collected: _Collected, status: int) -> None:
    """Log one webhook request: its events, those stored (not replays), applied here and queued; count it."""
    seconds = time.monotonic() - collected.started
    figures = {
        "events": len(collected.events),
        "stored": collected.stored,
        "applied": collected.applied,
        "queued": collected.queued,
        "waiting": collected.waiting,
    }
    logger.info(
        "%s webhook: %d events; stored here %d new, %d applied, %d queued; %d left waiting for a worker; %.3f s",
        provider,
        *figures.values(),
        seconds,
        extra={**figures, "seconds": round(seconds, 4), "status": status},
    )
    metric_add("dwvlist_webhook_requests", provider=provider)
    metric_observe("dwvlist_webhook_request_duration_seconds", seconds, provider=provider)


def strict_view(view_class: type, provider: str):
    """Return a view for anymail's view_class: 404 unless the provider is configured, 400 for a malformed payload."""

    mixins = tuple(mixin for mixin in VIEW_MIXINS if mixin.applies(view_class))
    base = type(view_class.__name__, (*mixins, view_class), {}) if mixins else view_class

    class StrictWebhookView(base):
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
                with metrics_deferred():
                    return self._post_collected(request, collected, *args, **kwargs)
            finally:
                _collected.reset(token)

        def _post_collected(self, request, collected, *args, **kwargs):
            try:
                response = super().post(request, *args, **kwargs)
                if collected.events:
                    tracking_take(esp_name=collected.esp_name, events=collected.events, collected=collected)
            except WebhookPayloadInvalid as exc:
                logger.warning("%s webhook: malformed payload: %s", self.esp_name, str(exc)[:300])
                return HttpResponseBadRequest("Malformed payload.\n", content_type="text/plain")
            except SnsConfirmationFailed:
                message = "Could not confirm the subscription with AWS; the SubscribeURL is in the log.\n"
                return HttpResponse(message, status=503, content_type="text/plain")
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
            webhook_request_report(
                provider=provider_name(self.esp_name), collected=collected, status=response.status_code
            )
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


def tracking_take(*, esp_name: str, events: list, collected: _Collected | None = None) -> None:
    """Put the events on the pending stream (stored here if quick, else by a worker); store them here without Redis."""
    items = [incoming_from(provider=provider_name(esp_name), event=event) for event in events]
    try:
        outcome = events_accept(items)
    except redis.RedisError:
        logger.warning("%s webhook: Redis is unreachable; storing %d events here", esp_name, len(items))
        outcome = items_receive(items)
        events_stored_report(events=outcome.stored, received_at=timezone.now())
        if outcome.deferred:
            _deferred_queue(outcome.deferred)
    if collected is None:
        return
    if outcome is None:
        collected.waiting = len(items)
    else:
        collected.stored, collected.applied = len(outcome.stored), len(outcome.applied)
        collected.queued = len(outcome.deferred)


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

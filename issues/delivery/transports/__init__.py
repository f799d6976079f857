"""The transports by name: which one the settings choose.

To add a provider with a batch API, add a module here with a Transport
subclass (see base.py) and name it below.
"""

from __future__ import annotations

from django.conf import settings

from issues.delivery.transports.anymail_batch import BATCH_ESPS, AnymailBatchTransport
from issues.delivery.transports.base import Transport
from issues.delivery.transports.django_backend import DjangoBackendTransport
from issues.delivery.transports.mailgun import MailgunBatchTransport
from issues.delivery.transports.smtp import SmtpTransport


def transport_for_settings() -> Transport:
    """Return the transport that EMAIL_TRANSPORT names."""
    kind = settings.EMAIL_TRANSPORT
    if kind == "smtp":
        return SmtpTransport()
    if kind == "mailgun":
        return MailgunBatchTransport()
    if kind in BATCH_ESPS:
        return AnymailBatchTransport(kind)
    return DjangoBackendTransport(settings.EMAIL_BACKEND, kind)

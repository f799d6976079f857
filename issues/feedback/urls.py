"""The provider webhooks anymail supports, at /webhooks/<provider>/tracking/ and /inbound/.

Each answers only when its provider is configured (webhook_provider_configured);
the others are 404, as if not mounted.
"""

from anymail import urls as anymail_urls
from django.urls import URLPattern

from issues.feedback.webhooks import strict_view

app_name = "webhooks"


def _provider(name: str) -> str:
    # anymail's names: "<provider>_tracking_webhook", "<provider>_inbound_webhook", "mandrill_webhook".
    return name.removesuffix("_webhook").removesuffix("_tracking").removesuffix("_inbound")


urlpatterns = [
    URLPattern(pattern.pattern, strict_view(pattern.callback.view_class, _provider(pattern.name)), name=pattern.name)
    for pattern in anymail_urls.urlpatterns
]

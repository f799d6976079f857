"""Every provider webhook anymail supports, at /webhooks/<provider>/tracking/ and /inbound/."""

from anymail import urls as anymail_urls
from django.urls import URLPattern

from issues.feedback.webhooks import strict_view

app_name = "webhooks"

urlpatterns = [
    URLPattern(pattern.pattern, strict_view(pattern.callback.view_class), name=pattern.name)
    for pattern in anymail_urls.urlpatterns
]

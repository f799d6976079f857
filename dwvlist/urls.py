from django.contrib import admin
from django.urls import include, path

from dwvlist import views
from dwvlist.metrics import RedisCollector
from issues.metrics import IssuesCollector
from subscriptions import views as reader_views
from subscriptions.metrics import SubscriptionsCollector

admin.site.site_header = "dwvlist administration"

urlpatterns = [
    path("", reader_views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path(
        "metrics",
        views.metrics,
        {"collectors": (RedisCollector(), IssuesCollector(), SubscriptionsCollector())},
        name="metrics",
    ),
    path("admin/", admin.site.urls),
    path("editor/audit/", include("dwvlist.audit.urls")),
    path("editor/comments/", include("issues.comments.urls")),
    path("editor/subscribers/", include("subscriptions.staff.urls")),
    path("editor/api-tokens/", include("api.staff_urls")),
    path("editor/", include("issues.urls")),
    path("archive/", include("issues.archive.urls")),
    path("webhooks/", include("issues.feedback.urls")),
    path("", include("issues.feedback.bounces.urls")),
    path("api/v1/", include("api.urls")),
    path("", include("subscriptions.urls")),
]

handler403 = "dwvlist.views.error_forbidden"
handler404 = "dwvlist.views.error_not_found"
handler500 = "dwvlist.views.error_server"

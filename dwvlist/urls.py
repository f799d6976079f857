from django.contrib import admin
from django.urls import include, path

from dwvlist import views
from subscriptions import views as reader_views

admin.site.site_header = "dwvlist administration"

urlpatterns = [
    path("", reader_views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("editor/comments/", include("issues.comments.urls")),
    path("editor/subscribers/", include("subscriptions.staff.urls")),
    path("editor/", include("issues.urls")),
    path("archive/", include("issues.archive.urls")),
    path("webhooks/", include("issues.feedback.urls")),
    path("", include("subscriptions.urls")),
]

handler403 = "dwvlist.views.error_forbidden"
handler404 = "dwvlist.views.error_not_found"
handler500 = "dwvlist.views.error_server"

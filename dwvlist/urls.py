from django.contrib import admin
from django.urls import path

from dwvlist import views

admin.site.site_header = "dwvlist administration"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
]

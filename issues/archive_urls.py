from django.urls import path  # noqa: F401  (archive pages are added here)

app_name = "archive"

urlpatterns: list = []

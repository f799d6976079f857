from django.urls import path  # noqa: F401  (editor pages are added here)

app_name = "editor"

urlpatterns: list = []

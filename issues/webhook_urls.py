from django.urls import path  # noqa: F401  (provider webhooks are added here)

app_name = "webhooks"

urlpatterns: list = []

from django.urls import path  # noqa: F401  (reader pages are added here)

app_name = "subscriptions"

urlpatterns: list = []

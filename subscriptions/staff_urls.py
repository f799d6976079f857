from django.urls import path  # noqa: F401  (staff pages for subscribers: import, export)

app_name = "staff"

urlpatterns: list = []

from django.urls import path  # noqa: F401  (the editors' inbox of readers' replies is added here)

app_name = "comments"

urlpatterns: list = []

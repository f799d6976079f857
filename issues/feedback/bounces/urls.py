"""The bounce intake over HTTP and the tracked links of the SMTP path."""

from django.urls import path

from issues.feedback import tracking
from issues.feedback.bounces import views

app_name = "bounces"

urlpatterns = [
    path("bounces/receive/", views.bounce_receive_http, name="receive"),
    path("t/o/<str:token>/", tracking.tracking_open, name="open"),
    path("t/c/<str:token>/", tracking.tracking_click, name="click"),
]

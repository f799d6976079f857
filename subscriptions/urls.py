from django.urls import path

from subscriptions import views

app_name = "subscriptions"

urlpatterns = [
    path("lists/<slug:slug>/", views.list_detail, name="list_detail"),
    path("subscribe/", views.subscribe, name="subscribe"),
    path("subscribe/check-inbox/", views.check_inbox, name="check_inbox"),
    path("confirm/<str:token>/", views.confirm, name="confirm"),
    path("confirm-address/<str:token>/", views.confirm_address, name="confirm_address"),
    # links.py builds the /u/ and /p/ URLs that go out in every mail: keep them.
    path("u/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("u/<str:token>/again/", views.resubscribe, name="resubscribe"),
    path("p/<str:token>/", views.preferences, name="preferences"),
    path("p/<str:token>/address/", views.preferences_address, name="preferences_address"),
    path("p/<str:token>/data.json", views.preferences_data, name="preferences_data"),
    path("p/<str:token>/erase/", views.preferences_erase, name="preferences_erase"),
]

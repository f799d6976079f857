from django.urls import path

from issues.archive import views
from issues.archive.feeds import ArchiveFeed

app_name = "archive"

urlpatterns = [
    path("", views.archive_index, name="index"),
    path("<slug:list_slug>/", views.archive_list, name="list"),
    path("<slug:list_slug>/feed.atom", ArchiveFeed(), name="feed"),
    path("<slug:list_slug>/issues/<int:issue_id>/", views.archive_issue_link, name="issue_link"),
    path(
        "<slug:list_slug>/<int:year>/<int:month>/<slug:issue_slug>/",
        views.archive_issue,
        name="issue",
    ),
]

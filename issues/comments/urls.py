"""The editors' inbox of readers' replies, at /editor/comments/."""

from django.urls import path

from issues.comments import views

app_name = "comments"

urlpatterns = [
    path("", views.comment_list, name="list"),
    path("<int:comment_id>/", views.comment_detail, name="detail"),
    path("<int:comment_id>/handled/", views.comment_mark, name="mark"),
    path("<int:comment_id>/answer/", views.comment_answer_view, name="answer"),
    path("<int:comment_id>/publish/", views.comment_publish_view, name="publish"),
    path("<int:comment_id>/request/", views.comment_request_view, name="request"),
]

"""The editors' inbox of readers' replies, at /editor/comments/."""

from django.urls import path

from issues import comments

app_name = "comments"

urlpatterns = [
    path("", comments.comment_list, name="list"),
    path("<int:comment_id>/", comments.comment_detail, name="detail"),
    path("<int:comment_id>/handled/", comments.comment_mark, name="mark"),
    path("<int:comment_id>/answer/", comments.comment_answer_view, name="answer"),
    path("<int:comment_id>/publish/", comments.comment_publish_view, name="publish"),
]

from django.contrib.auth import views as auth_views
from django.urls import path

from issues import views

app_name = "editor"

urlpatterns = [
    path("", views.home, name="home"),
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="issues/login.html", redirect_authenticated_user=False),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(next_page="/"), name="logout"),
    path("issues/new/", views.issue_new, name="issue_new"),
    path("issues/preview/", views.issue_draft_preview, name="issue_draft_preview"),
    path("issues/preview/<str:slot>/mail.html", views.issue_draft_preview_html, name="issue_draft_preview_html"),
    path("issues/autosave/", views.issue_autosave, name="issue_autosave_new"),
    path("issues/<int:issue_id>/autosave/", views.issue_autosave, name="issue_autosave"),
    path("issues/<int:issue_id>/", views.issue_preview, name="issue_preview"),
    path("issues/<int:issue_id>/mail.html", views.issue_preview_html, name="issue_preview_html"),
    path("issues/<int:issue_id>/edit/", views.issue_edit, name="issue_edit"),
    path("issues/<int:issue_id>/test/", views.issue_test_send, name="issue_test_send"),
    path("issues/<int:issue_id>/schedule/", views.issue_schedule, name="issue_schedule"),
    path("issues/<int:issue_id>/unschedule/", views.issue_unschedule, name="issue_unschedule"),
    path("issues/<int:issue_id>/send/", views.issue_send, name="issue_send"),
    path("issues/<int:issue_id>/progress/", views.issue_progress, name="issue_progress"),
    path("issues/<int:issue_id>/progress.json", views.issue_progress_json, name="issue_progress_json"),
    path("issues/<int:issue_id>/pause/", views.issue_pause, name="issue_pause"),
    path("issues/<int:issue_id>/resume/", views.issue_resume, name="issue_resume"),
    path("issues/<int:issue_id>/cancel/", views.issue_cancel, name="issue_cancel"),
    path("issues/<int:issue_id>/report/", views.issue_report, name="issue_report"),
    path("issues/<int:issue_id>/report/failures.csv", views.issue_failures_csv, name="issue_failures_csv"),
    path("issues/<int:issue_id>/retry/", views.issue_retry_failed, name="issue_retry_failed"),
]

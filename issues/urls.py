from django.contrib.auth import views as auth_views
from django.urls import path

from issues.views import compose, preview, reports, sending

app_name = "editor"

urlpatterns = [
    path("", reports.home, name="home"),
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="issues/login.html", redirect_authenticated_user=False),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(next_page="/"), name="logout"),
    path("issues/new/", compose.issue_new, name="issue_new"),
    path("issues/preview/", compose.issue_draft_preview, name="issue_draft_preview"),
    path("issues/preview/<str:slot>/mail.html", compose.issue_draft_preview_html, name="issue_draft_preview_html"),
    path("issues/autosave/", compose.issue_autosave, name="issue_autosave_new"),
    path("issues/<int:issue_id>/autosave/", compose.issue_autosave, name="issue_autosave"),
    path("issues/<int:issue_id>/", preview.issue_preview, name="issue_preview"),
    path("issues/<int:issue_id>/mail.html", preview.issue_preview_html, name="issue_preview_html"),
    path("issues/<int:issue_id>/edit/", compose.issue_edit, name="issue_edit"),
    path("issues/<int:issue_id>/test/", preview.issue_test_send, name="issue_test_send"),
    path("issues/<int:issue_id>/schedule/", sending.issue_schedule, name="issue_schedule"),
    path("issues/<int:issue_id>/unschedule/", sending.issue_unschedule, name="issue_unschedule"),
    path("issues/<int:issue_id>/send/", sending.issue_send, name="issue_send"),
    path("issues/<int:issue_id>/progress/", sending.issue_progress, name="issue_progress"),
    path("issues/<int:issue_id>/progress.json", sending.issue_progress_json, name="issue_progress_json"),
    path("issues/<int:issue_id>/pause/", sending.issue_pause, name="issue_pause"),
    path("issues/<int:issue_id>/resume/", sending.issue_resume, name="issue_resume"),
    path("issues/<int:issue_id>/cancel/", sending.issue_cancel, name="issue_cancel"),
    path("issues/<int:issue_id>/report/", reports.issue_report, name="issue_report"),
    path("issues/<int:issue_id>/report/failures.csv", reports.issue_failures_csv, name="issue_failures_csv"),
    path("issues/<int:issue_id>/retry/", reports.issue_retry_failed, name="issue_retry_failed"),
]

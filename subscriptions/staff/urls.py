from django.urls import path

from subscriptions.staff import readers, views

app_name = "staff"

urlpatterns = [
    path("", readers.reader_list, name="readers"),
    path("<int:subscriber_id>/", readers.reader_detail, name="reader"),
    path("<int:subscriber_id>/<slug:action>/", readers.reader_action, name="reader_action"),
    path("import/", views.import_start, name="import"),
    path("import/<int:job_id>/", views.import_job, name="import_job"),
    path("import/<int:job_id>/progress.json", views.import_job_json, name="import_job_json"),
    path("import/<int:job_id>/resume/", views.import_job_resume, name="import_job_resume"),
    path("import/<int:job_id>/bad-rows.csv", views.import_job_errors, name="import_job_errors"),
    path("export.csv", views.export_csv, name="export"),
]

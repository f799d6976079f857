from django.urls import path

from subscriptions.staff import jobs, readers, views

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
    path("export/", jobs.export_start, name="export"),
    path("jobs/<int:job_id>/", jobs.job_page, name="job"),
    path("jobs/<int:job_id>/progress.json", jobs.job_json, name="job_json"),
    path("jobs/<int:job_id>/download/", jobs.job_download, name="job_download"),
    path("jobs/<int:job_id>/restart/", jobs.job_restart, name="job_restart"),
]

from django.urls import path

from subscriptions import staff_views

app_name = "staff"

urlpatterns = [
    path("import/", staff_views.import_start, name="import"),
    path("import/<int:job_id>/", staff_views.import_job, name="import_job"),
    path("import/<int:job_id>/progress.json", staff_views.import_job_json, name="import_job_json"),
    path("import/<int:job_id>/resume/", staff_views.import_job_resume, name="import_job_resume"),
    path("import/<int:job_id>/bad-rows.csv", staff_views.import_job_errors, name="import_job_errors"),
    path("export.csv", staff_views.export_csv, name="export"),
]

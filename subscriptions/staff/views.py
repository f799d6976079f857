"""Staff pages for subscribers: CSV import with its progress and report (exports: jobs.py)."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from dwvlist.access import subscribers_required
from dwvlist.celery import task_queue
from subscriptions.exports import csv_lines, import_error_rows
from subscriptions.imports.jobs import IMPORT_MAX_BYTES, import_job_create, import_job_stalled
from subscriptions.models import ImportJob, MailingList, Subscription


class ImportForm(forms.Form):
    file = forms.FileField(label="CSV file", help_text="UTF-8, first line naming the columns; up to 100 MB.")
    mailing_list = forms.ModelChoiceField(
        queryset=MailingList.objects.all(), label="List", help_text="Rows without a lists column go to this list."
    )
    consent = forms.ChoiceField(
        choices=ImportJob.Consent.choices,
        widget=forms.RadioSelect,
        label="Consent",
        initial=ImportJob.Consent.CONFIRM,
    )
    email_column = forms.CharField(
        required=False, max_length=200, label="Email column", help_text="Leave blank to find it by its name."
    )
    name_column = forms.CharField(required=False, max_length=200, label="Name column (optional)")
    lists_column = forms.CharField(
        required=False,
        max_length=200,
        label="Lists column (optional)",
        help_text="A column of list slugs, separated by ; or spaces.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # With one list there is nothing to choose: a first try must not fail for it.
        lists = list(MailingList.objects.order_by("pk")[:2])
        if len(lists) == 1:
            self.fields["mailing_list"].initial = lists[0].pk

    @property
    def chosen_file_name(self) -> str:
        """Return the name of the file sent with a form that failed, to say it must be chosen again."""
        upload = self.files.get("file") if self.is_bound else None
        return upload.name[:200] if upload is not None else ""

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > IMPORT_MAX_BYTES:
            raise ValidationError("The file is over 100 MB; split it and import the parts.")
        return upload


class ExportForm(forms.Form):
    mailing_list = forms.ModelChoiceField(queryset=MailingList.objects.all(), required=False, label="List")
    status = forms.ChoiceField(choices=[("", "Any status"), *Subscription.Status.choices], required=False)


@contextlib.contextmanager
def _upload_local(upload):
    """Yield a local path holding the upload (Django keeps big ones in a temporary file already)."""
    if hasattr(upload, "temporary_file_path"):
        yield Path(upload.temporary_file_path())
        return
    with tempfile.NamedTemporaryFile(suffix=".csv") as handle:
        for piece in upload.chunks():
            handle.write(piece)
        handle.flush()
        yield Path(handle.name)


@never_cache
@require_http_methods(["GET", "POST"])
@subscribers_required
def import_start(request):
    """Show the import form, recent imports and the export form; start an import."""
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            with _upload_local(form.cleaned_data["file"]) as path:
                job = import_job_create(
                    source=path,
                    file_name=form.cleaned_data["file"].name,
                    mailing_list=form.cleaned_data["mailing_list"],
                    consent=form.cleaned_data["consent"],
                    email_column=form.cleaned_data["email_column"],
                    name_column=form.cleaned_data["name_column"],
                    lists_column=form.cleaned_data["lists_column"],
                    created_by=request.user,
                )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            transaction.on_commit(lambda: task_queue("subscriptions.import_tasks.import_job_process", job.pk))
            return redirect("staff:import_job", job_id=job.pk)
    jobs = ImportJob.objects.select_related("mailing_list")[:10]
    return render(
        request,
        "subscriptions/staff/import.html",
        # Its own ids: both forms have a "mailing_list" field, and a second
        # id_mailing_list would leave the export's select without a label.
        {"form": form, "jobs": jobs, "export_form": ExportForm(auto_id="export_%s")},
        status=400 if form.errors else 200,
    )


def _progress(job: ImportJob) -> dict:
    return {
        "status": job.status,
        "status_display": job.get_status_display(),
        "percent": job.percent,
        "total_rows": job.total_rows,
        "processed_rows": job.processed_rows,
        "imported": job.imported_count,
        "new_subscribers": job.new_subscribers,
        "existing": job.existing_count,
        "unsubscribed": job.unsubscribed_count,
        "suppressed": job.suppressed_count,
        "duplicates": job.duplicate_count,
        "bad": job.bad_count,
        "confirmations_queued": job.confirmations_queued,
        "error": job.error,
    }


# An import with no progress for this long is offered a "continue" button (beat
# continues it by itself after IMPORT_STALL_SECONDS).
IMPORT_QUIET_SECONDS = 60


def _quiet_seconds() -> float:
    return min(IMPORT_QUIET_SECONDS, settings.IMPORT_STALL_SECONDS)


@never_cache
@require_GET
@subscribers_required
def import_job(request, job_id: int):
    """Show an import's progress (the page reloads itself while it runs) and its report."""
    job = get_object_or_404(ImportJob.objects.select_related("mailing_list", "created_by"), pk=job_id)
    errors = job.row_errors.order_by("row_number")[:50]
    return render(
        request,
        "subscriptions/staff/import_job.html",
        {
            "job": job,
            "progress": _progress(job),
            "errors": errors,
            "running": job.status in (ImportJob.Status.QUEUED, ImportJob.Status.RUNNING),
            "stalled": import_job_stalled(job=job, after_seconds=_quiet_seconds()),
            "quiet_seconds": _quiet_seconds(),
            "stall_minutes": max(1, round(settings.IMPORT_STALL_SECONDS / 60)),
        },
    )


@never_cache
@require_GET
@subscribers_required
def import_job_json(request, job_id: int):
    """Return an import's progress as JSON."""
    job = get_object_or_404(ImportJob, pk=job_id)
    return JsonResponse(_progress(job))


@require_POST
@subscribers_required
def import_job_resume(request, job_id: int):
    """Queue an import again, after its worker died; chunks already imported are skipped."""
    job = get_object_or_404(ImportJob, pk=job_id)
    running = job.status in (ImportJob.Status.QUEUED, ImportJob.Status.RUNNING)
    if running and not import_job_stalled(job=job, after_seconds=_quiet_seconds()):
        messages.info(request, "The import is still making progress: nothing to continue.")
    elif running:
        transaction.on_commit(lambda: task_queue("subscriptions.import_tasks.import_job_process", job.pk))
        messages.success(request, "The import was queued to continue where it stopped.")
    else:
        messages.info(request, "That import has already finished.")
    return redirect("staff:import_job", job_id=job.pk)


def _csv_response(lines, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


@require_GET
@subscribers_required
def import_job_errors(request, job_id: int):
    """Download an import's bad rows as CSV: row number, value and reason."""
    job = get_object_or_404(ImportJob, pk=job_id)
    return _csv_response(csv_lines(import_error_rows(job=job)), f"import-{job.pk}-bad-rows.csv")

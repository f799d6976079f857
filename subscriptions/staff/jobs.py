"""Staff pages for work that runs in the background: exports, and bulk actions on many readers."""

from __future__ import annotations

import base64
import binascii

from django.contrib import messages
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from dwvlist.access import subscribers_read_required, subscribers_required
from subscriptions.files import files_storage
from subscriptions.models import StaffJob
from subscriptions.staff.views import ExportForm
from subscriptions.staff_jobs.services import (
    staff_job_export_create,
    staff_job_report,
    staff_job_restart,
    staff_jobs_stalled_fail,
)


@never_cache
@require_http_methods(["GET", "POST"])
@subscribers_read_required
def export_start(request):
    """Show the export form and recent exports; start an export, which a worker writes."""
    form = ExportForm(request.POST if request.method == "POST" else None, auto_id="export_%s")
    if request.method == "POST" and form.is_valid():
        job = staff_job_export_create(
            mailing_list=form.cleaned_data["mailing_list"], status=form.cleaned_data["status"], user=request.user
        )
        return redirect("staff:job", job_id=job.pk)
    staff_jobs_stalled_fail()
    jobs = StaffJob.objects.filter(kind=StaffJob.Kind.EXPORT).select_related("mailing_list", "created_by")[:10]
    return render(
        request, "subscriptions/staff/export.html", {"form": form, "jobs": jobs}, status=400 if form.errors else 200
    )


def _job(job_id: int) -> StaffJob:
    staff_jobs_stalled_fail()  # a job whose worker went away says so at once
    return get_object_or_404(StaffJob.objects.select_related("mailing_list", "created_by"), pk=job_id)


@never_cache
@require_GET
@subscribers_read_required
def job_page(request, job_id: int):
    """Show a job's progress (the page reloads itself while it runs), and the download once it is whole."""
    job = _job(job_id)
    running = job.status in (StaffJob.Status.QUEUED, StaffJob.Status.RUNNING)
    return render(
        request,
        "subscriptions/staff/job.html",
        {"job": job, "report": staff_job_report(job=job), "running": running},
    )


@never_cache
@require_GET
@subscribers_read_required
def job_json(request, job_id: int):
    """Return a job's progress as JSON."""
    return JsonResponse(staff_job_report(job=_job(job_id)))


@require_GET
@subscribers_read_required
def job_download(request, job_id: int):
    """Send the finished export; a job that is not done has nothing to download."""
    job = get_object_or_404(StaffJob, pk=job_id, kind=StaffJob.Kind.EXPORT, status=StaffJob.Status.DONE)
    try:
        handle = files_storage().open(job.stored_name, "rb")
    except FileNotFoundError:
        raise Http404("The export's file is gone; start the export again.") from None
    response = FileResponse(handle, as_attachment=True, filename=job.file_name, content_type="text/csv; charset=utf-8")
    response["Content-Length"] = str(job.file_size)
    response["Cache-Control"] = "no-store"
    # RFC 9530: the client can check the file it saved is the one written.
    response["Repr-Digest"] = f"sha-256=:{base64.b64encode(binascii.unhexlify(job.sha256)).decode()}:"
    return response


@require_POST
@subscribers_required
def job_restart(request, job_id: int):
    """Start a failed job again."""
    job = get_object_or_404(StaffJob, pk=job_id)
    if staff_job_restart(job=job):
        messages.success(request, "Started again.")
    else:
        messages.info(request, "Only a job that failed can be started again.")
    return redirect("staff:job", job_id=job.pk)

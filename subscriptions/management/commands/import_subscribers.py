"""Import subscribers from a CSV file, in this process, with a report at the end."""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from subscriptions.imports.jobs import import_job_create, import_job_run
from subscriptions.models import ImportJob, MailingList


class Command(BaseCommand):
    help = "Import subscribers from a CSV file with a header line into a list."

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", help="The CSV file (UTF-8, first line names the columns).")
        parser.add_argument("--list", dest="list_slug", help="Slug of the list to subscribe them to.")
        parser.add_argument(
            "--consent",
            choices=ImportJob.Consent.values,
            default=ImportJob.Consent.CONFIRM,
            help="given: subscribe at once (consent recorded as this import); "
            "confirm: leave pending and mail a confirmation (default).",
        )
        parser.add_argument("--email-column", default="", help="Column holding the address (default: guessed).")
        parser.add_argument("--name-column", default="", help="Column holding the name (optional).")
        parser.add_argument(
            "--lists-column", default="", help="Column naming list slugs for each row (optional; overrides --list)."
        )
        parser.add_argument("--resume", type=int, metavar="JOB_ID", help="Continue an import that stopped.")
        parser.add_argument("--errors", metavar="FILE", help="Write the bad rows report to this CSV file.")

    def handle(self, *args, **options):
        if options["resume"]:
            job = ImportJob.objects.filter(pk=options["resume"]).first()
            if job is None:
                raise CommandError(f"No import job #{options['resume']}.")
        else:
            job = self._create(options)
        self.stdout.write(f"Import #{job.pk}: reading {job.file_name}")
        job = import_job_run(job_id=job.pk)
        if job.status == ImportJob.Status.FAILED:
            raise CommandError(f"Import #{job.pk} failed: {job.error}")
        self._report(job)
        if options["errors"]:
            from subscriptions.exports import import_errors_write

            with open(options["errors"], "w", encoding="utf-8", newline="") as handle:
                import_errors_write(job=job, out=handle)
            self.stdout.write(f"Bad rows written to {options['errors']}")

    def _create(self, options) -> ImportJob:
        if not options["file"] or not options["list_slug"]:
            raise CommandError("Give the file and --list SLUG (or --resume JOB_ID).")
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        mailing_list = MailingList.objects.filter(slug=options["list_slug"]).first()
        if mailing_list is None:
            raise CommandError(f"No list has the slug {options['list_slug']!r}.")
        try:
            return import_job_create(
                source=path,
                file_name=path.name,
                mailing_list=mailing_list,
                consent=options["consent"],
                email_column=options["email_column"],
                name_column=options["name_column"],
                lists_column=options["lists_column"],
                copy=False,
            )
        except ValidationError as exc:
            raise CommandError(exc.messages[0]) from None

    def _report(self, job: ImportJob) -> None:
        self.stdout.write(
            f"Rows: {job.processed_rows}\n"
            f"Subscriptions created: {job.imported_count} (new readers: {job.new_subscribers})\n"
            f"Already on the list: {job.existing_count}\n"
            f"Had unsubscribed, left alone: {job.unsubscribed_count}\n"
            f"Suppressed or erased, skipped: {job.suppressed_count}\n"
            f"Repeated in the file, skipped: {job.duplicate_count}\n"
            f"Bad rows: {job.bad_count}\n"
            f"Confirmation mails queued: {job.confirmations_queued}\n"
        )

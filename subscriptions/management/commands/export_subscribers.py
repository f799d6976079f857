"""Write subscribers as CSV, to a file or standard output."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from subscriptions.exports import subscribers_write
from subscriptions.models import MailingList, Subscription


class Command(BaseCommand):
    help = "Export subscriptions (email, name, list, status, consent record) as CSV."

    def add_arguments(self, parser):
        parser.add_argument("--list", dest="list_slug", help="Only this list's subscribers.")
        parser.add_argument("--status", choices=Subscription.Status.values, help="Only subscriptions in this state.")
        parser.add_argument("--output", "-o", help="Write to this file instead of standard output.")

    def handle(self, *args, **options):
        list_id = None
        if options["list_slug"]:
            mailing_list = MailingList.objects.filter(slug=options["list_slug"]).first()
            if mailing_list is None:
                raise CommandError(f"No list has the slug {options['list_slug']!r}.")
            list_id = mailing_list.pk
        if options["output"]:
            with open(options["output"], "w", encoding="utf-8", newline="") as handle:
                count = subscribers_write(out=handle, list_id=list_id, status=options["status"])
            self.stderr.write(f"{count} rows written to {options['output']}")
        else:
            subscribers_write(out=sys.stdout, list_id=list_id, status=options["status"])

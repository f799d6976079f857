from django.core.management.base import BaseCommand

from dwvlist import demo


class Command(BaseCommand):
    help = "Load the demo list, logins, readers and sample issue (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--readers", type=int, default=2000, help="How many demo readers (default 2000).")

    def handle(self, *args, readers: int, **options):
        mailing_list = demo.demo_load(readers=readers)
        self.stdout.write(f"Demo list: {mailing_list.name} ({mailing_list.subscriptions.count()} subscriptions)")
        for username, login in demo.LOGINS.items():
            self.stdout.write(f"Login: {username} / {login['password']} ({login['group']})")

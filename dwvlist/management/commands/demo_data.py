import secrets

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from dwvlist import demo


class Command(BaseCommand):
    help = (
        "Load the demo list, logins, readers and sample issue (idempotent). With DEBUG off it refuses unless "
        "given --force, and then gives the logins random passwords, printed once."
    )

    def add_arguments(self, parser):
        parser.add_argument("--readers", type=int, default=2000, help="How many demo readers (default 2000).")
        parser.add_argument(
            "--force",
            action="store_true",
            help="Run with DEBUG off too; the demo logins then get random passwords instead of the published ones.",
        )

    def handle(self, *args, readers: int, force: bool, **options):
        production = not settings.DEBUG
        if production and not force:
            raise CommandError(
                "DEBUG is off: this looks like a real site, and the demo logins' passwords are published. "
                "Run with --force to load the demo anyway, with random passwords."
            )
        passwords = {username: secrets.token_urlsafe(18) for username in demo.LOGINS} if production else None
        mailing_list, set_now = demo.demo_load(readers=readers, passwords=passwords)
        self.stdout.write(f"Demo list: {mailing_list.name} ({mailing_list.subscriptions.count()} subscriptions)")
        for username, login in demo.LOGINS.items():
            if not production:
                self.stdout.write(f"Login: {username} / {login['password']} ({login['group']})")
            elif username in set_now:
                self.stdout.write(f"Login: {username} / {set_now[username]} ({login['group']}; shown only now)")
            else:
                self.stdout.write(f"Login: {username} (exists; password unchanged) ({login['group']})")

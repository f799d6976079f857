"""manage.py api_token create|revoke|list: API tokens from the command line."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from api import services
from api.models import SCOPES, ApiToken


class Command(BaseCommand):
    help = "Create, revoke or list API tokens. A new token's secret is printed once."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a token and print its secret once.")
        create.add_argument("--user", required=True, help="The staff account's username.")
        create.add_argument("--scope", action="append", required=True, choices=list(SCOPES), help="Repeat for more.")
        create.add_argument("--name", required=True, help="What will use it.")
        revoke = sub.add_parser("revoke", help="Revoke a token.")
        revoke.add_argument("token", help="The token's id, its prefix, or the whole secret.")
        sub.add_parser("list", help="List the tokens (never their secrets).")

    def handle(self, *args, action: str, **options):
        return getattr(self, f"_{action}")(**options)

    def _create(self, *, user: str, scope: list[str], name: str, **_):
        account = get_user_model().objects.filter(username=user).first()
        if account is None:
            raise CommandError(f"No user named {user!r}.")
        try:
            created = services.api_token_create(user=account, name=name, scopes=scope)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stderr.write(f"Created token {created.token.pk} “{created.token.name}” for {user}: shown once.")
        self.stdout.write(created.secret)

    def _revoke(self, *, token: str, **_):
        value = token.strip()
        prefix = value.removeprefix(services.TOKEN_PREFIX).split("_")[0]
        found = ApiToken.objects.filter(pk=int(value)).first() if value.isdigit() else None
        found = found or ApiToken.objects.filter(prefix=prefix).first()
        if found is None:
            raise CommandError(f"No token {value[:20]!r}.")
        changed = services.api_token_revoke(token=found)
        self.stdout.write(f"Revoked token {found.pk} “{found.name}”." if changed else "It was already revoked.")

    def _list(self, **_):
        for token in ApiToken.objects.select_related("user"):
            state = f"revoked {token.revoked_at:%Y-%m-%d %H:%M}" if token.revoked_at else "active"
            used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never"
            self.stdout.write(
                f"{token.pk}\tdwv_{token.prefix}_…\t{token.user.get_username()}\t{','.join(token.scopes)}\t"
                f"last used {used}\t{state}\t{token.name}"
            )

from django.apps import AppConfig


class DwvlistConfig(AppConfig):
    name = "dwvlist"
    verbose_name = "dwvlist"

    def ready(self) -> None:
        from django.core import checks

        from dwvlist.checks import secret_keys_check

        checks.register(secret_keys_check, checks.Tags.security)

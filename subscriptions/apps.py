from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _roles_sync(sender, **kwargs) -> None:
    """Give the Editors and Admins groups their permissions after every migrate, new models' included."""
    from django.apps import apps

    from subscriptions.roles import roles_ensure

    if sender.label == "subscriptions":
        roles_ensure(apps)


class SubscriptionsConfig(AppConfig):
    name = "subscriptions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_migrate.connect(_roles_sync, sender=self, dispatch_uid="subscriptions.roles_sync")

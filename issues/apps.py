from django.apps import AppConfig


class IssuesConfig(AppConfig):
    name = "issues"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Connect the provider webhook receivers to anymail's signals.
        import issues.feedback.webhooks  # noqa: F401

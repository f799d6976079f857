from django.apps import AppConfig


class IssuesConfig(AppConfig):
    name = "issues"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Connect the provider webhook receivers, and register the feedback
        # tasks (autodiscovery only looks at issues.tasks).
        import issues.feedback_tasks
        import issues.webhooks  # noqa: F401

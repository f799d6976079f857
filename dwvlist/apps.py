from django.apps import AppConfig


class DwvlistConfig(AppConfig):
    name = "dwvlist"
    verbose_name = "dwvlist"

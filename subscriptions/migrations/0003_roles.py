"""Create the staff roles, Editors and Admins, with their permissions (data only)."""

from django.db import migrations

from subscriptions.roles import roles_ensure


def roles_create(apps, schema_editor):
    roles_ensure(apps)


def roles_delete(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=["Editors", "Admins"]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("subscriptions", "0002_prefix_indexes"),
        ("issues", "0003_ledger_fillfactor"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(roles_create, roles_delete)]

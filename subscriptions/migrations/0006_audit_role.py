"""Admins may read the audit trail (the Admins role gains audit.view_auditentry)."""

from django.db import migrations

from subscriptions.roles import roles_ensure


def roles_update(apps, schema_editor):
    roles_ensure(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("subscriptions", "0005_list_contact_and_mail_commands"),
        ("audit", "0001_initial"),
    ]

    operations = [migrations.RunPython(roles_update, migrations.RunPython.noop)]

"""Leave half of each ledger page free, so claiming and marking sent update rows in place.

A storage parameter the model state cannot express; PostgreSQL only.
"""

from django.db import migrations


def fillfactor_set(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE issues_delivery SET (fillfactor = 50)")


def fillfactor_reset(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE issues_delivery RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("issues", "0002_initial")]

    operations = [migrations.RunPython(fillfactor_set, fillfactor_reset)]

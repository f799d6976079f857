"""Indexes for the admin's search by the start of an address or name.

The admin searches lower-cased prefixes; on PostgreSQL a LIKE 'prefix%' can use
a btree index only with a pattern operator class. SQLite has none, so these are
PostgreSQL-only and outside the model state.
"""

from django.db import migrations

PREFIX_INDEXES = [
    ("subscriber_email_lower_prefix", "lower((email)::text) text_pattern_ops"),
    ("subscriber_name_lower_prefix", "lower((name)::text) text_pattern_ops"),
]


def prefix_indexes_create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, expression in PREFIX_INDEXES:
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON subscriptions_subscriber ({expression})")


def prefix_indexes_drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _ in PREFIX_INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("subscriptions", "0001_initial")]

    operations = [migrations.RunPython(prefix_indexes_create, prefix_indexes_drop)]

"""The subscribers screen: trigram indexes for "any part of an address or name".

Django's icontains is UPPER(column) LIKE UPPER('%term%'); on PostgreSQL a GIN
index of pg_trgm trigrams over the same UPPER(...) expression serves it for
terms of three characters or more. SQLite has no such index (a scan; fine at
its sizes), so, like 0002, these are PostgreSQL-only and outside the model
state.
"""

from django.db import migrations

TRIGRAM_INDEXES = [
    ("subscriber_email_trgm", "upper((email)::text) gin_trgm_ops"),
    ("subscriber_name_trgm", "upper((name)::text) gin_trgm_ops"),
]


def trigram_indexes_create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, expression in TRIGRAM_INDEXES:
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON subscriptions_subscriber USING gin ({expression})")


def trigram_indexes_drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _ in TRIGRAM_INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("subscriptions", "0007_api_sources")]

    operations = [migrations.RunPython(trigram_indexes_create, trigram_indexes_drop)]

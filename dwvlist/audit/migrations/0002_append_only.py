"""The audit trail refuses UPDATE and DELETE in the database too (PostgreSQL)."""

from django.db import migrations

_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only: %% refused', TG_OP;
END
$$;
CREATE TRIGGER audit_entry_append_only BEFORE UPDATE OR DELETE ON audit_auditentry
    FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only();
"""
_DROP = """
DROP TRIGGER IF EXISTS audit_entry_append_only ON audit_auditentry;
DROP FUNCTION IF EXISTS audit_entry_append_only();
"""


def _trigger_add(apps, schema_editor):
    # SQLite (the embedded default) has no TRUNCATE: test and `flush` runs
    # empty tables with DELETE, which such a trigger would refuse. There the
    # model and the admin keep the trail append-only.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_FUNCTION)


def _trigger_drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_DROP)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [
        migrations.RunPython(_trigger_add, _trigger_drop),
    ]

"""Migration operations that keep a live database writable while they run.

Big tables (the ledger, provider events) get their indexes built
CONCURRENTLY on PostgreSQL, in a migration with `atomic = False`, so
sending and webhooks go on meanwhile; SQLite builds them the plain way.
Data passes over them go a range of ids at a time, each range committed
on its own (rows_update_batched), in a data migration of their own.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction
from django.db.migrations.operations import AddIndex, RemoveIndex


class AddIndexConcurrently(AddIndex):
    """Add an index without locking out writers on PostgreSQL (the migration must be non-atomic)."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.add_index(model, self.index, concurrently=True)
        return None

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.remove_index(model, self.index, concurrently=True)
        return None


class RemoveIndexConcurrently(RemoveIndex):
    """Drop an index without locking out writers on PostgreSQL (the migration must be non-atomic)."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        if schema_editor.connection.vendor != "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            index = from_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
            schema_editor.remove_index(model, index, concurrently=True)
        return None


def rows_update_batched(
    schema_editor,
    *,
    table: str,
    assignments: str,
    where: str = "TRUE",
    params: Sequence = (),
    batch_size: int = 10_000,
) -> int:
    """Run `UPDATE table SET assignments WHERE where` one id range at a time, each committed alone; return rows changed.

    For a data migration over a big table, from a RunPython in a migration
    with `atomic = False`: no row stays locked longer than one range takes,
    and sending and webhooks write between ranges. `params` fill the %s
    placeholders of `assignments` and then of `where`.
    """
    connection = schema_editor.connection
    if connection.in_atomic_block:
        raise RuntimeError("rows_update_batched needs a migration with atomic = False")
    quoted = schema_editor.quote_name(table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT MIN(id), MAX(id) FROM {quoted}")  # noqa: S608 (a table name, quoted)
        low, high = cursor.fetchone()
    if low is None:
        return 0
    changed = 0
    sql = f"UPDATE {quoted} SET {assignments} WHERE id >= %s AND id < %s AND ({where})"  # noqa: S608
    for start in range(low, high + 1, batch_size):
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.execute(sql, [*params, start, start + batch_size])
            changed += cursor.rowcount
    return changed

"""TimescaleDB features, used only when the extension is available on the server (SPEC §6)."""

from __future__ import annotations

from django.db.backends.base.schema import BaseDatabaseSchemaEditor


def timescale_available(schema_editor: BaseDatabaseSchemaEditor) -> bool:
    if schema_editor.connection.vendor != "postgresql":
        return False
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
        return cursor.fetchone() is not None


def hypertable_create(schema_editor: BaseDatabaseSchemaEditor, *, table: str, time_column: str) -> bool:
    """Turn `table` into a hypertable on `time_column` when TimescaleDB exists; returns whether it did."""
    if not timescale_available(schema_editor):
        return False
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        cursor.execute(
            "SELECT create_hypertable(%s, %s, if_not_exists => TRUE, migrate_data => TRUE)",
            [table, time_column],
        )
    return True

"""TimescaleDB features, used only when the extension is available on the server (docs/storage.md)."""

from __future__ import annotations

from datetime import timedelta

from django.db.backends.base.base import BaseDatabaseWrapper
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


# --- Compression and retention policies (connection-level: used by migrations and the housekeeping task) -------


def timescale_installed(connection: BaseDatabaseWrapper) -> bool:
    """Whether the timescaledb extension is created in this database (not merely available on the server)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
        return cursor.fetchone() is not None


def hypertable_exists(connection: BaseDatabaseWrapper, *, table: str) -> bool:
    if not timescale_installed(connection):
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = %s", [table])
        return cursor.fetchone() is not None


def timescale_policies_apply(
    connection: BaseDatabaseWrapper,
    *,
    table: str,
    time_column: str,
    segment_by: str = "symbol",
    compress_after: timedelta = timedelta(hours=1),
    chunk_interval: timedelta = timedelta(hours=1),
    retention_hours: int,
) -> bool:
    """Compression (segmented by symbol, after `compress_after`) and retention on a hypertable; False when not one.

    Chunks of `chunk_interval`: the policies act on whole chunks, so with TimescaleDB's default of 7 days nothing
    would be compressed after 1 h nor dropped after 48 h. Only chunks created from now on get the new interval.
    """
    if not hypertable_exists(connection, table=table):
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_chunk_time_interval(%s, %s)", [table, chunk_interval])
        # compress_segmentby keeps each symbol's rows together (queries are per symbol); newest first inside.
        cursor.execute(
            f"ALTER TABLE {connection.ops.quote_name(table)} SET (timescaledb.compress, "
            f"timescaledb.compress_segmentby = %s, timescaledb.compress_orderby = %s)",
            [segment_by, f"{time_column} DESC"],
        )
        cursor.execute("SELECT add_compression_policy(%s, %s, if_not_exists => TRUE)", [table, compress_after])
    retention_policy_ensure(connection, table=table, hours=retention_hours)
    return True


def retention_policy_hours(connection: BaseDatabaseWrapper, *, table: str) -> float | None:
    """The drop_after of `table`'s retention policy in hours, or None when it has none."""
    if not hypertable_exists(connection, table=table):
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXTRACT(EPOCH FROM (config ->> 'drop_after')::interval) / 3600 "
            "FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention' AND hypertable_name = %s",
            [table],
        )
        row = cursor.fetchone()
    return None if row is None else float(row[0])


def timescale_retention_managed(connection: BaseDatabaseWrapper, *, table: str) -> bool:
    """Whether TimescaleDB drops `table`'s old chunks itself (so row-by-row deletes must not run on it)."""
    return retention_policy_hours(connection, table=table) is not None


def retention_policy_ensure(connection: BaseDatabaseWrapper, *, table: str, hours: int) -> bool:
    """Make `table`'s retention policy drop chunks older than `hours`; returns whether it changed anything."""
    if not hypertable_exists(connection, table=table):
        return False
    current = retention_policy_hours(connection, table=table)
    if current is not None and abs(current - hours) < 1e-9:
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT remove_retention_policy(%s, if_exists => TRUE)", [table])
        # Checked hourly (TimescaleDB's default is daily), so nothing outlives the retention by more than an hour or so.
        cursor.execute(
            "SELECT add_retention_policy(%s, %s, schedule_interval => %s)",
            [table, timedelta(hours=hours), timedelta(hours=1)],
        )
    return True
